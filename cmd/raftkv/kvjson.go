package main

import (
	"encoding/base64"
	"strconv"
	"unicode/utf8"
)

// kvItem is a key-value pair as the API encodes it in JSON: UTF-8 bytes as
// "key"/"value", other bytes base64 in "key_b64"/"value_b64".
type kvItem struct {
	Key      string `json:"key,omitempty"`
	KeyB64   string `json:"key_b64,omitempty"`
	Value    string `json:"value,omitempty"`
	ValueB64 string `json:"value_b64,omitempty"`
	Version  uint64 `json:"version,omitempty"`
}

func newKVItem(key, value []byte, version uint64) kvItem {
	it := kvItem{Version: version}
	if utf8.Valid(key) {
		it.Key = string(key)
	} else {
		it.KeyB64 = base64.StdEncoding.EncodeToString(key)
	}
	if utf8.Valid(value) {
		it.Value = string(value)
	} else {
		it.ValueB64 = base64.StdEncoding.EncodeToString(value)
	}
	return it
}

func (it kvItem) key() []byte   { return decodeB64(it.Key, it.KeyB64) }
func (it kvItem) value() []byte { return decodeB64(it.Value, it.ValueB64) }

func decodeB64(s, b64 string) []byte {
	if b64 == "" {
		return []byte(s)
	}
	b, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return []byte(b64)
	}
	return b
}

// printable returns s as is when it reads well on one line, else Go-quoted.
func printable(b []byte) string {
	s := string(b)
	if !utf8.ValidString(s) {
		return strconv.Quote(s)
	}
	for _, r := range s {
		if r == '\t' || r == '\n' || r == '\r' || !strconv.IsPrint(r) {
			return strconv.Quote(s)
		}
	}
	if s == "" {
		return `""`
	}
	return s
}
