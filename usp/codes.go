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
