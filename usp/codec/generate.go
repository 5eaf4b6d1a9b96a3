package codec

// The generated code is checked in: a build needs neither protoc nor
// protoc-gen-go. `make generate` installs protoc-gen-go at the version of
// google.golang.org/protobuf in go.mod and runs this.
//go:generate protoc --go_out=. --go_opt=paths=source_relative usp-record-1-4.proto usp-msg-1-4.proto
