package api

import (
	"sync"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// JSON memo bounds: answers smaller than memoMinBytes (in protobuf's wire
// form) are encoded each time, which costs little; the memo keeps at most
// memoMaxBytes of wire forms and JSON, and starts over when full.
const (
	memoMinBytes = 256
	memoMaxBytes = 32 << 20
)

// memoJSON is the gateway's JSON marshaler (grpc-gateway's default:
// protojson with unpopulated fields, HttpBody passed through) remembering
// the JSON of large answers by their content. Encoding protobuf to JSON
// is the costliest part of a REST read (a page of 100 assignments with
// their raw Graph objects takes longer to encode than the whole gRPC call
// that produced it), and the same answers come back again (the read cache
// keeps them): the JSON of a message is a function of the message, so
// the memo needs no invalidation. The key is the message's type and its
// deterministic wire form, compared in full.
type memoJSON struct {
	*runtime.HTTPBodyMarshaler

	mu   sync.Mutex
	m    map[string][]byte
	size int
}

func newMemoJSON() *memoJSON {
	return &memoJSON{
		HTTPBodyMarshaler: &runtime.HTTPBodyMarshaler{Marshaler: &runtime.JSONPb{
			MarshalOptions:   protojson.MarshalOptions{EmitUnpopulated: true},
			UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: true},
		}},
		m: map[string][]byte{},
	}
}

// Marshal encodes v as the default marshaler does, from the memo when it
// has encoded the same message before.
func (j *memoJSON) Marshal(v any) ([]byte, error) {
	m, ok := v.(proto.Message)
	if !ok || proto.Size(m) < memoMinBytes {
		return j.HTTPBodyMarshaler.Marshal(v)
	}
	wire, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return j.HTTPBodyMarshaler.Marshal(v)
	}
	key := string(m.ProtoReflect().Descriptor().FullName()) + "\x00" + string(wire)
	j.mu.Lock()
	b, ok := j.m[key]
	j.mu.Unlock()
	if ok {
		return b, nil
	}
	b, err = j.HTTPBodyMarshaler.Marshal(v)
	if err != nil {
		return nil, err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.size+len(key)+len(b) > memoMaxBytes {
		j.m, j.size = map[string][]byte{}, 0
	}
	if _, ok := j.m[key]; !ok {
		j.m[key], j.size = b, j.size+len(key)+len(b)
	}
	return b, nil
}
