package usp

// The message error codes of TR-369 ("Error Codes") the agent uses.
const (
	codeNotSupported = 7001 // the request type is not supported
	codeInternal     = 7003
	codeResources    = 7005 // the answer would be too large
	codePermission   = 7006 // the sender is not a configured controller
	codePathSyntax   = 7008
	codeNotTable     = 7018 // GetInstances on an object that is not a table
	codeInvalidPath  = 7026 // not in the supported or instantiated model
)

// The codes of commands and their failures.
const (
	codeCommandFailure = 7022 // the command ran and failed
	codeCommandArgs    = 7027 // invalid command arguments
)

// The codes of Add, Set and Delete.
const (
	codeInvalidValue = 7012 // a parameter's value cannot be taken
	codeUnknownParam = 7010 // a parameter the object does not have
	codeNotWritable  = 7013 // a parameter the controller may not set
	codeNotCreatable = 7017 // an object that cannot be added
	codeNotUpdatable = 7020 // an object the controller may not set
	codeNotDeletable = 7024 // an object that cannot be deleted
	codeDuplicateKey = 7025 // a subscription ID taken
)
