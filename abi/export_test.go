package abi

// UnmarshalSlow is Unmarshal without its fast path.
func UnmarshalSlow(data []byte, v any) error {
	if err := Validate(data); err != nil {
		return err
	}
	return unmarshalSlow(data, v)
}

// FastHandles reports whether Unmarshal's fast path decodes data into v.
func FastHandles(data []byte, v any) bool {
	ok, _ := fastUnmarshal(data, v)
	return ok
}
