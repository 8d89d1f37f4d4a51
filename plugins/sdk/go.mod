module github.com/raftkv/raftkv/plugins/sdk

go 1.26.8

require (
	github.com/raftkv/raftkv/abi v0.0.0
	github.com/vmihailenco/msgpack/v5 v5.4.1
)

require github.com/vmihailenco/tagparser/v2 v2.0.0 // indirect

// The abi module lives beside this one in the raftkv repository.
replace github.com/raftkv/raftkv/abi => ../../abi
