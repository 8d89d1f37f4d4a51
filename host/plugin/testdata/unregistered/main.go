//go:build wasip1

// Command unregistered links the SDK but never calls sdk.Register.
package main

import _ "github.com/raftkv/raftkv/plugins/sdk"

func main() {}
