package graph

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Decoding helpers shared by every resource. They implement the tolerance
// REFERENCE.md §6 asks for: a single entity may come bare (as OData sends
// it) or wrapped in {"value": {…}} (as most documentation examples show
// it); @odata.type may be written with or without its leading '#';
// timestamps may carry 7 fractional digits and a +00:00 offset; unknown
// properties are ignored by the typed fields and kept in Raw.

// unwrapEntity returns the entity of a single-entity body: the body
// itself, or the object in "value" when the body is the documentation's
// wrapper. None of the Cloud Licensing entities or directory objects has a
// "value" property, so a "value" object with no "id" and no "@odata.type"
// beside it can only be the wrapper.
func unwrapEntity(data []byte) ([]byte, error) {
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(data, &probe); err != nil {
		return nil, err
	}
	if v, ok := probe["value"]; ok && probe["id"] == nil && probe["@odata.type"] == nil {
		if t := bytes.TrimSpace(v); len(t) > 0 && t[0] == '{' {
			return t, nil
		}
	}
	return data, nil
}

// wirePage is a collection page, including a delta round's last page.
type wirePage struct {
	Value     *[]json.RawMessage `json:"value"`
	NextLink  string             `json:"@odata.nextLink"`
	DeltaLink string             `json:"@odata.deltaLink"`
}

// decodePage decodes {"value":[…], "@odata.nextLink"|"@odata.deltaLink": …}
// with item decoding each element. Errors read "decode <what> page: …".
func decodePage[T any](data []byte, what string, item func([]byte) (T, error)) (items []T, next, delta string, err error) {
	var w wirePage
	if err := json.Unmarshal(data, &w); err != nil {
		return nil, "", "", fmt.Errorf("decode %s page: %w", what, err)
	}
	if w.Value == nil {
		return nil, "", "", fmt.Errorf("decode %s page: no value array", what)
	}
	items = make([]T, 0, len(*w.Value))
	for i, raw := range *w.Value {
		it, err := item(raw)
		if err != nil {
			return nil, "", "", fmt.Errorf("decode %s page: item %d: %w", what, i, err)
		}
		items = append(items, it)
	}
	return items, w.NextLink, w.DeltaLink, nil
}

// decodeEntity decodes a single entity body (bare or wrapped) with obj.
// Errors read "decode <what>: …".
func decodeEntity[T any](data []byte, what string, obj func([]byte) (T, error)) (T, error) {
	var zero T
	entity, err := unwrapEntity(data)
	if err != nil {
		return zero, fmt.Errorf("decode %s: %w", what, err)
	}
	v, err := obj(entity)
	if err != nil {
		return zero, fmt.Errorf("decode %s: %w", what, err)
	}
	return v, nil
}

// parseDateTime reads an Edm.DateTimeOffset: RFC 3339 with any number of
// fractional digits and a Z or numeric offset; a timestamp without offset
// (as innerError.date is written) is taken as UTC. "" is the zero time.
// The result is in UTC.
func parseDateTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	if t, err := time.Parse("2006-01-02T15:04:05.999999999", s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%q is not a timestamp", s)
}

// odataTypeName is the last dotted part of an @odata.type, lower-cased,
// with or without the leading '#': "#microsoft.graph.user" → "user".
func odataTypeName(t string) string {
	t = strings.TrimPrefix(strings.TrimSpace(t), "#")
	if i := strings.LastIndexByte(t, '.'); i >= 0 {
		t = t[i+1:]
	}
	return strings.ToLower(t)
}

// DirectoryObject is an assignee or member: Type is "user", "group" or
// "device" (from @odata.type; "" if absent or another type).
type DirectoryObject struct {
	ID, Type, DisplayName, UserPrincipalName string
}

// DirectoryObjectPage is one page of a directory object collection, such
// as a group's members.
type DirectoryObjectPage struct {
	Objects  []DirectoryObject
	NextLink string
}

type wireDirectoryObject struct {
	Type              string `json:"@odata.type"`
	ID                string `json:"id"`
	DisplayName       string `json:"displayName"`
	UserPrincipalName string `json:"userPrincipalName"`
}

// DecodeDirectoryObject decodes a single directory object (the answer of
// GET …/assignedTo), bare or wrapped in "value".
func DecodeDirectoryObject(data []byte) (DirectoryObject, error) {
	return decodeEntity(data, "directory object", decodeDirectoryObject)
}

// DecodeDirectoryObjectPage decodes a page of directory objects.
func DecodeDirectoryObjectPage(data []byte) (DirectoryObjectPage, error) {
	items, next, _, err := decodePage(data, "directory object", decodeDirectoryObject)
	if err != nil {
		return DirectoryObjectPage{}, err
	}
	return DirectoryObjectPage{Objects: items, NextLink: next}, nil
}

func decodeDirectoryObject(raw []byte) (DirectoryObject, error) {
	var w wireDirectoryObject
	if err := json.Unmarshal(raw, &w); err != nil {
		return DirectoryObject{}, err
	}
	if w.ID == "" {
		return DirectoryObject{}, errors.New("directory object has no id")
	}
	return DirectoryObject{ID: w.ID, Type: directoryType(w.Type), DisplayName: w.DisplayName, UserPrincipalName: w.UserPrincipalName}, nil
}

// directoryType maps an @odata.type to "user", "group", "device" or "".
func directoryType(odataType string) string {
	switch t := odataTypeName(odataType); t {
	case "user", "group", "device":
		return t
	}
	return ""
}

// expandedObject decodes an optional expanded directory object; nil or
// null gives the zero value.
func expandedObject(raw json.RawMessage) (DirectoryObject, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return DirectoryObject{}, nil
	}
	o, err := decodeDirectoryObject(raw)
	if err != nil {
		return DirectoryObject{}, fmt.Errorf("assignedTo: %w", err)
	}
	return o, nil
}

// wireRef is an expanded entity of which only the id is read.
type wireRef struct {
	ID string `json:"id"`
}

func refID(r *wireRef) string {
	if r == nil {
		return ""
	}
	return r.ID
}
