package graphsim

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// The fake Microsoft Entra authority: just enough of the v2.0 endpoints for
// MSAL (under azidentity) to run the client-credentials grant with a client
// secret. With instance discovery disabled MSAL asks for
// {authority}/{tenant}/v2.0/.well-known/openid-configuration, requires
// authorization_endpoint, token_endpoint and issuer in it (the issuer's
// scheme and host must equal the authority's), then POSTs the form to
// token_endpoint.

type discoveryDoc struct {
	Issuer                            string   `json:"issuer"`
	AuthorizationEndpoint             string   `json:"authorization_endpoint"`
	TokenEndpoint                     string   `json:"token_endpoint"`
	JWKSURI                           string   `json:"jwks_uri"`
	TokenEndpointAuthMethodsSupported []string `json:"token_endpoint_auth_methods_supported"`
	ResponseTypesSupported            []string `json:"response_types_supported"`
	SubjectTypesSupported             []string `json:"subject_types_supported"`
	IDTokenSigningAlgValuesSupported  []string `json:"id_token_signing_alg_values_supported"`
	ScopesSupported                   []string `json:"scopes_supported"`
	GrantTypesSupported               []string `json:"grant_types_supported"`
	TenantRegionScope                 *string  `json:"tenant_region_scope"`
	CloudInstanceName                 string   `json:"cloud_instance_name"`
}

type tokenResponse struct {
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	ExtExpiresIn int64  `json:"ext_expires_in"`
	AccessToken  string `json:"access_token"`
}

type aadError struct {
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description"`
	ErrorCodes       []int  `json:"error_codes"`
	Timestamp        string `json:"timestamp"`
	TraceID          string `json:"trace_id"`
	CorrelationID    string `json:"correlation_id"`
	ErrorURI         string `json:"error_uri"`
}

type jwks struct {
	Keys []jwk `json:"keys"`
}

// authorityBase is the scheme and host the caller used to reach us: MSAL
// insists that the issuer's host equals the authority host it was given.
func authorityBase(r *http.Request) string {
	scheme := "https"
	if r.TLS == nil {
		scheme = "http"
	}
	return scheme + "://" + r.Host
}

func (s *Server) knownTenant(tenant string) bool { return strings.EqualFold(tenant, s.tenantID) }

func (s *Server) serveDiscovery(w http.ResponseWriter, r *http.Request, tenant string) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		writeAADError(w, r, s, http.StatusMethodNotAllowed, "invalid_request", 900561,
			"The endpoint only accepts GET requests.")
		return
	}
	if !s.knownTenant(tenant) {
		writeAADError(w, r, s, http.StatusBadRequest, "invalid_tenant", 90002,
			fmt.Sprintf("Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.", tenant))
		return
	}
	base := authorityBase(r) + "/" + s.tenantID
	writeJSON(w, http.StatusOK, "application/json; charset=utf-8", discoveryDoc{
		Issuer:                            base + "/v2.0",
		AuthorizationEndpoint:             base + "/oauth2/v2.0/authorize",
		TokenEndpoint:                     base + "/oauth2/v2.0/token",
		JWKSURI:                           base + "/discovery/v2.0/keys",
		TokenEndpointAuthMethodsSupported: []string{"client_secret_post"},
		ResponseTypesSupported:            []string{"token"},
		SubjectTypesSupported:             []string{"pairwise"},
		IDTokenSigningAlgValuesSupported:  []string{"RS256"},
		ScopesSupported:                   []string{"openid", "profile", "email", "offline_access"},
		GrantTypesSupported:               []string{"client_credentials"},
		CloudInstanceName:                 "graphsim",
	})
}

func (s *Server) serveKeys(w http.ResponseWriter, r *http.Request, tenant string) {
	if !s.knownTenant(tenant) {
		writeAADError(w, r, s, http.StatusBadRequest, "invalid_tenant", 90002,
			fmt.Sprintf("Tenant '%s' not found.", tenant))
		return
	}
	k := publicJWK(&s.key.PublicKey)
	k.Kid = s.kid
	k.Issuer = tokenIssuer(s.tenantID)
	writeJSON(w, http.StatusOK, "application/json; charset=utf-8", jwks{Keys: []jwk{k}})
}

// serveToken implements the client-credentials grant with client_secret
// in the form body (client_secret_post), the way MSAL sends it.
func (s *Server) serveToken(w http.ResponseWriter, r *http.Request, tenant string) {
	if r.Method != http.MethodPost {
		writeAADError(w, r, s, http.StatusMethodNotAllowed, "invalid_request", 900561,
			"The endpoint only accepts POST requests.")
		return
	}
	if !s.knownTenant(tenant) {
		writeAADError(w, r, s, http.StatusBadRequest, "invalid_request", 90002,
			fmt.Sprintf("Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.", tenant))
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
	if err := r.ParseForm(); err != nil || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		writeAADError(w, r, s, http.StatusBadRequest, "invalid_request", 900144,
			"The request body must contain the following parameter: 'grant_type'.")
		return
	}
	form := r.PostForm
	if gt := form.Get("grant_type"); gt != "client_credentials" {
		writeAADError(w, r, s, http.StatusBadRequest, "unsupported_grant_type", 70003,
			fmt.Sprintf("The app requested an unsupported grant type '%s'. graphsim supports client_credentials only.", gt))
		return
	}
	clientID := form.Get("client_id")
	var app *App
	for i := range s.apps {
		if strings.EqualFold(s.apps[i].ClientID, clientID) {
			app = &s.apps[i]
		}
	}
	if app == nil {
		writeAADError(w, r, s, http.StatusBadRequest, "unauthorized_client", 700016,
			fmt.Sprintf("Application with identifier '%s' was not found in the directory '%s'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.", clientID, s.tenantID))
		return
	}
	secret := form.Get("client_secret")
	switch {
	case form.Get("client_assertion") != "":
		writeAADError(w, r, s, http.StatusUnauthorized, "invalid_client", 700027,
			"Client assertion failed signature validation. graphsim accepts client secrets only.")
		return
	case secret == "":
		writeAADError(w, r, s, http.StatusUnauthorized, "invalid_client", 7000218,
			"The request body must contain the following parameter: 'client_assertion' or 'client_secret'.")
		return
	case subtle.ConstantTimeCompare([]byte(secret), []byte(app.ClientSecret)) != 1:
		writeAADError(w, r, s, http.StatusUnauthorized, "invalid_client", 7000215,
			fmt.Sprintf("Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '%s'.", app.ClientID))
		return
	}
	if code, aadsts, msg := checkScope(form.Get("scope")); code != "" {
		writeAADError(w, r, s, http.StatusBadRequest, code, aadsts, msg)
		return
	}
	tok, err := s.issue(app.ClientID, app.Roles)
	if err != nil {
		s.log.Error("issue token", "err", err)
		writeAADError(w, r, s, http.StatusInternalServerError, "temporarily_unavailable", 90033, "A transient error has occurred. Please try again.")
		return
	}
	w.Header().Set("Cache-Control", "no-store, no-cache")
	w.Header().Set("Pragma", "no-cache")
	secs := int64(tokenLifetime.Seconds())
	writeJSON(w, http.StatusOK, "application/json; charset=utf-8", tokenResponse{
		TokenType: "Bearer", ExpiresIn: secs, ExtExpiresIn: secs, AccessToken: tok,
	})
}

// checkScope accepts what Entra accepts for the client-credentials grant to
// Graph: one resource scope, Graph's, with the /.default suffix. MSAL adds
// openid, profile and offline_access, which Entra ignores for this grant.
// It returns the OAuth error code, AADSTS number and message of a refusal,
// or code "" when the scope is acceptable.
func checkScope(scope string) (code string, aadsts int, msg string) {
	var resource []string
	for _, sc := range strings.Fields(scope) {
		switch sc {
		case "openid", "profile", "offline_access", "email":
			continue
		}
		resource = append(resource, sc)
	}
	if len(resource) != 1 || !strings.HasSuffix(resource[0], "/.default") {
		return "invalid_scope", 1002012, fmt.Sprintf("The provided value for scope %s is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).", scope)
	}
	switch res := strings.TrimSuffix(resource[0], "/.default"); res {
	case graphAudience, graphAudience + "/", graphAppID:
		return "", 0, ""
	default:
		return "invalid_resource", 500011, fmt.Sprintf("The resource principal named %s was not found in the tenant. graphsim serves Microsoft Graph only.", res)
	}
}

// writeAADError answers in the shape Entra's token endpoint uses, with the
// description prefixed by its AADSTS code and followed by the trace data.
func writeAADError(w http.ResponseWriter, r *http.Request, s *Server, status int, code string, aadsts int, msg string) {
	now := s.Now().UTC()
	traceID := w.Header().Get("request-id")
	corr := w.Header().Get("client-request-id")
	w.Header().Set("x-ms-request-id", traceID)
	writeJSON(w, status, "application/json; charset=utf-8", aadError{
		Error: code,
		ErrorDescription: fmt.Sprintf("AADSTS%d: %s Trace ID: %s Correlation ID: %s Timestamp: %s",
			aadsts, msg, traceID, corr, now.Format("2006-01-02 15:04:05Z")),
		ErrorCodes:    []int{aadsts},
		Timestamp:     now.Format("2006-01-02 15:04:05Z"),
		TraceID:       traceID,
		CorrelationID: corr,
		ErrorURI:      authorityBase(r) + "/error?code=" + fmt.Sprint(aadsts),
	})
}

func writeJSON(w http.ResponseWriter, status int, contentType string, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // Graph writes & in next links as is, not as \u0026
	if err := enc.Encode(v); err != nil {
		// Only our own wire structs come here; they always encode.
		http.Error(w, "encode response: "+err.Error(), http.StatusInternalServerError)
		return
	}
	body := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
