package httpapi

// JSONToMsgPack converts a JSON value to MsgPack exactly as the plugin
// endpoints convert a JSON body (see docs/api.md); `raftkv plugin run` uses
// it so that a local run sees the bytes a cluster would.
func JSONToMsgPack(data []byte) ([]byte, error) { return jsonToMsgpack(nil, data) }

// MsgPackToJSON renders a plugin result as the plugin endpoints do.
func MsgPackToJSON(data []byte) []byte { return msgpackToJSON(nil, data) }
