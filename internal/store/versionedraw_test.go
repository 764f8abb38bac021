package store

import (
	"encoding/json"
	"reflect"
	"testing"
)

// versionedRawCases are raw assignments in the shapes Graph sends and in
// the awkward ones a byte-level cut could get wrong.
var versionedRawCases = []string{
	`{"id":"a1","allotment":{"id":"al"},"assignedTo":{"@odata.type":"#microsoft.graph.user","id":"u1","displayName":"Ada Lindqvist"}}`,
	`{"id":"a1","assignedTo":{"displayName":"Engineering","@odata.type":"#microsoft.graph.group","id":"g1"}}`,
	`{"id":"a1","assignedTo":{"id":"g1","displayName":"R&D \"core\" {team}, [x]","x":1}}`,
	`{"id":"a1","assignedTo":{"displayName":"only"}}`,
	`{ "id" : "a1" , "assignedTo" : { "id" : "u1" , "displayName" : "Ada" } , "disabledServicePlanIds" : [ ] }`,
	`{"id":"a1","assignedTo":{"nested":{"displayName":"not this one"},"list":["}",{"a":"{"}],"n":-1.5e3,"t":true,"z":null,"displayName":"Ada"}}`,
	`{"id":"a1","displayName":"top level","assignedTo":{"id":"u1"}}`,
	`{"id":"a1","assignedTo":null,"displayName":"x"}`,
	`{"id":"a1","assignedTo":{"id":"d1","displayName":"Laptop \u00e9\\"}}`,
	`{"id":"a1","note":"\"assignedTo\":{\"displayName\":\"in a string\"}","assignedTo":{"id":"u1","displayName":"Ada"}}`,
}

// TestVersionedRaw_cutEqualsDecoded: the byte-level cut of the assignee's
// name leaves the same JSON value as decoding and encoding does, and valid
// JSON, for every case.
func TestVersionedRaw_cutEqualsDecoded(t *testing.T) {
	for _, raw := range versionedRawCases {
		got, want := versionedRaw([]byte(raw)), versionedRawDecoded([]byte(raw))
		var g, w any
		if err := json.Unmarshal(got, &g); err != nil {
			t.Errorf("versionedRaw(%s) = %s: not JSON: %v", raw, got, err)
			continue
		}
		if err := json.Unmarshal(want, &w); err != nil {
			t.Fatalf("versionedRawDecoded(%s) = %s: not JSON: %v", raw, want, err)
		}
		if !reflect.DeepEqual(g, w) {
			t.Errorf("versionedRaw(%s)\n = %s\nwant %s", raw, got, want)
		}
	}
}

func BenchmarkVersionedRaw(b *testing.B) {
	raw := []byte(versionedRawCases[0])
	b.Run("cut", func(b *testing.B) {
		for b.Loop() {
			_ = versionedRaw(raw)
		}
	})
	b.Run("decoded", func(b *testing.B) {
		for b.Loop() {
			_ = versionedRawDecoded(raw)
		}
	})
}
