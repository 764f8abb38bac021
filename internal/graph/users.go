package graph

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"net/http"
	"net/url"
	"strings"
)

// User is a directory user with the properties seatledger's chargeback
// needs. In a delta round after the first, Graph may send only the
// properties that changed: absent ones are zero here, and Raw says which
// were present.
type User struct {
	ID                string
	UserPrincipalName string
	DisplayName       string
	Department        string
	CompanyName       string
	CostCenter        string // employeeOrgData.costCenter
	AccountEnabled    bool
	Removed           bool // the delta round reports the user deleted (an "@removed" annotation)
	Raw               json.RawMessage
}

// UserPage is one page of users, or of a users delta round (whose last
// page carries DeltaLink instead of NextLink).
type UserPage struct {
	Users     []User
	NextLink  string
	DeltaLink string
}

// userSelect are the user properties read by GetUser and UsersDelta.
var userSelect = []string{"id", "userPrincipalName", "displayName", "department", "companyName", "employeeOrgData", "accountEnabled"}

type wireUser struct {
	ID                string `json:"id"`
	UserPrincipalName string `json:"userPrincipalName"`
	DisplayName       string `json:"displayName"`
	Department        string `json:"department"`
	CompanyName       string `json:"companyName"`
	EmployeeOrgData   *struct {
		CostCenter string `json:"costCenter"`
	} `json:"employeeOrgData"`
	AccountEnabled *bool           `json:"accountEnabled"`
	Removed        json.RawMessage `json:"@removed"`
}

// DecodeUser decodes a single user, bare or wrapped in "value".
func DecodeUser(data []byte) (User, error) {
	return decodeEntity(data, "user", decodeUserObject)
}

// DecodeUserPage decodes a page of users or of a delta round.
func DecodeUserPage(data []byte) (UserPage, error) {
	items, next, delta, err := decodePage(data, "user", decodeUserObject)
	if err != nil {
		return UserPage{}, err
	}
	return UserPage{Users: items, NextLink: next, DeltaLink: delta}, nil
}

func decodeUserObject(raw []byte) (User, error) {
	var w wireUser
	if err := json.Unmarshal(raw, &w); err != nil {
		return User{}, err
	}
	if w.ID == "" {
		return User{}, errors.New("user has no id")
	}
	u := User{
		ID: w.ID, UserPrincipalName: w.UserPrincipalName, DisplayName: w.DisplayName, Department: w.Department,
		CompanyName: w.CompanyName, AccountEnabled: w.AccountEnabled != nil && *w.AccountEnabled,
		Removed: len(w.Removed) > 0 && string(w.Removed) != "null",
		Raw:     json.RawMessage(bytes.Clone(raw)),
	}
	if w.EmployeeOrgData != nil {
		u.CostCenter = w.EmployeeOrgData.CostCenter
	}
	return u, nil
}

// GetUser reads one user by object id or user principal name. An unknown
// user is an *Error with Status 404.
func (c *Client) GetUser(ctx context.Context, idOrUPN string) (User, error) {
	if idOrUPN == "" {
		return User{}, errors.New("get user: empty id")
	}
	q := Query{Select: userSelect}
	u := c.pathURL(q, "users", idOrUPN)
	if strings.HasPrefix(idOrUPN, "$") {
		// Graph reads a segment starting with $ as a system segment; a UPN
		// that starts with $ must be addressed as a key literal.
		u = c.keyURL(q, "users", idOrUPN)
	}
	body, err := c.get(ctx, u)
	if err != nil {
		return User{}, fmt.Errorf("get user %q: %w", idOrUPN, err)
	}
	usr, err := DecodeUser(body)
	if err != nil {
		return User{}, fmt.Errorf("get user %q: %w", idOrUPN, err)
	}
	return usr, nil
}

// keyURL addresses an entity of a collection by key-literal syntax,
// collection('key'), for keys that cannot stand as a path segment.
func (c *Client) keyURL(q Query, collection, key string) string {
	u := *c.base
	lit := strings.ReplaceAll(url.PathEscape(StringLiteral(key)), "%27", "'")
	u.RawPath = strings.TrimSuffix(u.EscapedPath(), "/") + "/" + collection + "(" + lit + ")"
	u.Path, _ = url.PathUnescape(u.RawPath)
	u.RawQuery = q.Encode()
	return u.String()
}

// ErrDeltaExpired is wrapped by UsersDelta's error when Graph no longer
// accepts the delta link (410 Gone, or a syncStateNotFound-style code): the
// caller starts a full round again with "". Such an error also wraps
// ErrDeltaLinkUnusable.
var ErrDeltaExpired = errors.New("delta link expired")

// ErrDeltaLinkUnusable is wrapped by UsersDelta's error when the delta link
// it was given cannot be used, whatever the reason: it points outside the
// client's Graph URL (another host, port, scheme or API version: it is
// never followed, so the token is never sent there), Graph says it expired
// (ErrDeltaExpired), or Graph refuses it as malformed or unknown (400, 404).
// The caller discards the link and starts a full round with "".
var ErrDeltaLinkUnusable = errors.New("delta link unusable")

// deltaExpiredCodes are the error codes Graph uses when a delta or skip
// token can no longer be used.
var deltaExpiredCodes = []string{"syncStateNotFound", "syncStateInvalid", "resyncRequired", "badRequestExpiredDeltaToken"}

func isDeltaExpired(err error) bool {
	var gerr *Error
	if !errors.As(err, &gerr) {
		return false
	}
	if gerr.Status == http.StatusGone {
		return true
	}
	for _, code := range deltaExpiredCodes {
		if strings.EqualFold(gerr.Code, code) || strings.EqualFold(gerr.InnerCode, code) {
			return true
		}
	}
	return false
}

// isDeltaRefused reports whether Graph refused a stored delta link itself
// (as opposed to throttling, failing or refusing our credentials, which a
// full round would meet too).
func isDeltaRefused(err error) bool {
	var gerr *Error
	return errors.As(err, &gerr) && (gerr.Status == http.StatusBadRequest || gerr.Status == http.StatusNotFound)
}

// underBase reports whether link is on the client's Graph URL: same
// scheme and host, and a path under the base path (a link of another API
// version is another API's state).
func (c *Client) underBase(link string) bool {
	if !c.sameOrigin(link) {
		return false
	}
	u, err := url.Parse(link)
	if err != nil {
		return false
	}
	base := strings.TrimSuffix(c.base.Path, "/")
	return u.Path == base || strings.HasPrefix(u.Path, base+"/")
}

// UsersDelta runs one users delta round: from deltaLink, or with "" a full
// initial round selecting the properties User has, following
// @odata.nextLink verbatim and calling fn for each user (in order, one at
// a time) until the page that carries @odata.deltaLink, which it returns
// for the next round. It stops at fn's first error and returns it. When
// deltaLink cannot be used (see ErrDeltaLinkUnusable; a link outside the
// Graph URL is refused before any request) the error wraps
// ErrDeltaLinkUnusable, and also ErrDeltaExpired when Graph said so.
func (c *Client) UsersDelta(ctx context.Context, deltaLink string, fn func(User) error) (string, error) {
	next := deltaLink
	if next == "" {
		next = c.pathURL(Query{Select: userSelect}, "users", "delta")
	} else if !c.underBase(next) {
		return "", fmt.Errorf("users delta: %w: %s is not under the Graph URL %s", ErrDeltaLinkUnusable, redact(next), redact(c.base.String()))
	}
	seen := map[string]bool{}
	for {
		if seen[next] {
			return "", fmt.Errorf("users delta: next link %s repeats an earlier page", redact(next))
		}
		seen[next] = true
		body, err := c.get(ctx, next)
		if err != nil {
			switch {
			case isDeltaExpired(err):
				return "", fmt.Errorf("users delta: %w: %w: %w", ErrDeltaLinkUnusable, ErrDeltaExpired, err)
			case deltaLink != "" && isDeltaRefused(err):
				return "", fmt.Errorf("users delta: %w: %w", ErrDeltaLinkUnusable, err)
			}
			return "", fmt.Errorf("users delta: %w", err)
		}
		page, err := DecodeUserPage(body)
		if err != nil {
			return "", fmt.Errorf("users delta: %w", err)
		}
		for _, u := range page.Users {
			if err := fn(u); err != nil {
				return "", err
			}
		}
		switch {
		case page.NextLink != "":
			if !c.sameOrigin(page.NextLink) {
				return "", fmt.Errorf("users delta: next link %s leaves %s", redact(page.NextLink), c.base.Host)
			}
			next = page.NextLink
		case page.DeltaLink != "":
			return page.DeltaLink, nil
		default:
			return "", errors.New("users delta: a page has neither @odata.nextLink nor @odata.deltaLink")
		}
	}
}

// GroupMembers lists the direct members of a group (users, groups,
// devices, …) with their id and type.
func (c *Client) GroupMembers(ctx context.Context, groupID string) iter.Seq2[DirectoryObject, error] {
	if groupID == "" {
		return failed[DirectoryObject](errors.New("list group members: empty group id"))
	}
	return list(c, ctx, "members of group "+groupID,
		c.pathURL(c.pageQuery(Query{Select: []string{"id"}}), "groups", groupID, "members"),
		func(b []byte) ([]DirectoryObject, string, error) {
			p, err := DecodeDirectoryObjectPage(b)
			return p.Objects, p.NextLink, err
		})
}
