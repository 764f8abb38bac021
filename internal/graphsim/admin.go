package graphsim

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// The admin API under /_sim/: JSON in and out, no Graph token needed. It
// changes the tenant while the simulator runs, through the same mutators
// tests call. docs/graph-simulator.md lists the routes.

const adminBase = "/_sim"

type adminError struct {
	Error string `json:"error"`
}

func writeAdmin(w http.ResponseWriter, status int, v any) {
	if v == nil {
		w.WriteHeader(status)
		return
	}
	writeJSON(w, status, "application/json", v)
}

func writeAdminErr(w http.ResponseWriter, err error) {
	status := http.StatusBadRequest
	var se *SimError
	switch {
	case errors.Is(err, ErrNotFound):
		status = http.StatusNotFound
	case errors.As(err, &se):
		status = se.Status
	}
	writeAdmin(w, status, adminError{Error: err.Error()})
}

func decodeAdmin(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("decode request body: %w", err)
	}
	return nil
}

func (s *Server) serveAdmin(w http.ResponseWriter, r *http.Request, path string) {
	segs := strings.Split(strings.Trim(path, "/"), "/")
	route := r.Method + " " + segs[0]
	n := len(segs)
	switch {
	case route == "GET state" && n == 1:
		writeAdmin(w, http.StatusOK, s.Snapshot())
	case route == "GET clock" && n == 1:
		writeAdmin(w, http.StatusOK, map[string]string{"now": graphTime(s.Now())})
	case route == "POST clock" && n == 1:
		var req struct {
			Advance string `json:"advance"`
		}
		if err := decodeAdmin(r, &req); err != nil {
			writeAdminErr(w, err)
			return
		}
		d, err := time.ParseDuration(req.Advance)
		if err != nil {
			writeAdminErr(w, fmt.Errorf("advance %q: %w", req.Advance, err))
			return
		}
		now, err := s.AdvanceClock(d)
		if err != nil {
			writeAdminErr(w, err)
			return
		}
		writeAdmin(w, http.StatusOK, map[string]string{"now": graphTime(now)})
	case route == "GET faults" && n == 1:
		writeAdmin(w, http.StatusOK, s.Faults())
	case route == "POST faults" && n == 1:
		var rules []FaultRule
		if err := decodeAdmin(r, &rules); err != nil {
			writeAdminErr(w, err)
			return
		}
		if err := s.SetFaults(rules); err != nil {
			writeAdminErr(w, err)
			return
		}
		writeAdmin(w, http.StatusOK, s.Faults())
	case route == "DELETE faults" && n == 1:
		_ = s.SetFaults(nil)
		writeAdmin(w, http.StatusNoContent, nil)
	case route == "GET users" && n == 1:
		writeAdmin(w, http.StatusOK, s.Users())
	case route == "POST users" && n == 1:
		var u UserState
		if err := decodeAdmin(r, &u); err != nil {
			writeAdminErr(w, err)
			return
		}
		if err := s.AddUser(u); err != nil {
			writeAdminErr(w, err)
			return
		}
		writeAdmin(w, http.StatusCreated, u)
	case route == "PATCH users" && n == 2:
		s.adminPatchUser(w, r, segs[1])
	case route == "DELETE users" && n == 2:
		s.adminDo(w, s.RemoveUser(segs[1]))
	case route == "POST users" && n == 3 && segs[2] == "reprocess":
		s.adminDo(w, s.Reprocess(segs[1]))
	case route == "GET groups" && n == 1:
		writeAdmin(w, http.StatusOK, s.Groups())
	case route == "POST groups" && n == 1:
		var g GroupState
		if err := decodeAdmin(r, &g); err != nil {
			writeAdminErr(w, err)
			return
		}
		if err := s.AddGroup(g); err != nil {
			writeAdminErr(w, err)
			return
		}
		writeAdmin(w, http.StatusCreated, g)
	case route == "POST groups" && n == 3 && segs[2] == "members":
		var m struct {
			ID string `json:"id"`
		}
		if err := decodeAdmin(r, &m); err != nil {
			writeAdminErr(w, err)
			return
		}
		s.adminDo(w, s.AddGroupMember(segs[1], m.ID))
	case route == "DELETE groups" && n == 4 && segs[2] == "members":
		s.adminDo(w, s.RemoveGroupMember(segs[1], segs[3]))
	case route == "GET allotments" && n == 1:
		writeAdmin(w, http.StatusOK, s.Allotments())
	case route == "PATCH allotments" && n == 2:
		var req struct {
			AllottedUnits *int32 `json:"allottedUnits"`
		}
		if err := decodeAdmin(r, &req); err != nil {
			writeAdminErr(w, err)
			return
		}
		if req.AllottedUnits == nil {
			writeAdminErr(w, errors.New("allottedUnits is required"))
			return
		}
		s.adminDo(w, s.SetAllottedUnits(segs[1], *req.AllottedUnits))
	case route == "PATCH allotments" && n == 4 && segs[2] == "subscriptions":
		var req struct {
			State string `json:"state"`
		}
		if err := decodeAdmin(r, &req); err != nil {
			writeAdminErr(w, err)
			return
		}
		s.adminDo(w, s.SetSubscriptionState(segs[1], segs[3], req.State))
	case route == "GET assignments" && n == 1:
		writeAdmin(w, http.StatusOK, s.Assignments())
	case route == "POST assignments" && n == 1:
		var a AssignmentState
		if err := decodeAdmin(r, &a); err != nil {
			writeAdminErr(w, err)
			return
		}
		created, err := s.Assign(a)
		if err != nil {
			writeAdminErr(w, err)
			return
		}
		writeAdmin(w, http.StatusCreated, created)
	case route == "DELETE assignments" && n == 2:
		s.adminDo(w, s.Unassign(segs[1]))
	case route == "GET waitingMembers" && n == 1:
		writeAdmin(w, http.StatusOK, s.WaitingMembers())
	case route == "GET assignmentErrors" && n == 1:
		writeAdmin(w, http.StatusOK, s.AssignmentErrors())
	case route == "POST tokens" && n == 1:
		// Tokens for callers of another API (seatledger itself), so that
		// scripts and other teams' tests can call a server that trusts
		// this authority.
		var req struct {
			Audience string   `json:"audience"`
			Caller   string   `json:"caller"`
			Roles    []string `json:"roles"`
			Lifetime string   `json:"lifetime"`
		}
		if err := decodeAdmin(r, &req); err != nil {
			writeAdminErr(w, err)
			return
		}
		var lifetime time.Duration
		if req.Lifetime != "" {
			d, err := time.ParseDuration(req.Lifetime)
			if err != nil {
				writeAdminErr(w, &SimError{Status: http.StatusBadRequest, Code: "badRequest", Message: "lifetime: " + err.Error()})
				return
			}
			lifetime = d
		}
		if req.Audience == "" || req.Caller == "" {
			writeAdminErr(w, &SimError{Status: http.StatusBadRequest, Code: "badRequest", Message: "audience and caller are required"})
			return
		}
		tok, err := s.MintCallerToken(CallerToken{Audience: req.Audience, Caller: req.Caller, Roles: req.Roles, Lifetime: lifetime})
		if err != nil {
			writeAdminErr(w, err)
			return
		}
		writeAdmin(w, http.StatusOK, map[string]string{"access_token": tok, "token_type": "Bearer"})
	case route == "POST delta" && n == 2 && segs[1] == "expire":
		s.ExpireDeltaLinks()
		writeAdmin(w, http.StatusOK, map[string]string{})
	case route == "PUT planRules" && n == 1:
		var rules []PlanRule
		if err := decodeAdmin(r, &rules); err != nil {
			writeAdminErr(w, err)
			return
		}
		s.adminDo(w, s.SetPlanRules(rules))
	default:
		writeAdmin(w, http.StatusNotFound, adminError{Error: "no admin route " + r.Method + " " + adminBase + path})
	}
}

func (s *Server) adminDo(w http.ResponseWriter, err error) {
	if err != nil {
		writeAdminErr(w, err)
		return
	}
	writeAdmin(w, http.StatusNoContent, nil)
}

// adminPatchUser applies the properties present in the body to a user.
func (s *Server) adminPatchUser(w http.ResponseWriter, r *http.Request, id string) {
	var patch map[string]json.RawMessage
	if err := decodeAdmin(r, &patch); err != nil {
		writeAdminErr(w, err)
		return
	}
	var cur *UserState
	for _, u := range s.Users() {
		if u.ID == id {
			cur = &u
		}
	}
	if cur == nil {
		writeAdminErr(w, notFound("user", id))
		return
	}
	b, _ := json.Marshal(cur)
	var merged map[string]json.RawMessage
	_ = json.Unmarshal(b, &merged)
	for k, v := range patch {
		if k == "id" {
			writeAdminErr(w, errors.New("id cannot change"))
			return
		}
		merged[k] = v
	}
	b, _ = json.Marshal(merged)
	var u UserState
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&u); err != nil {
		writeAdminErr(w, fmt.Errorf("patch user: %w", err))
		return
	}
	if err := s.UpdateUser(u); err != nil {
		writeAdminErr(w, err)
		return
	}
	writeAdmin(w, http.StatusOK, u)
}
