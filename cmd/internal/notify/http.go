package notify

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// maxRequestBytes bounds the JSON bodies of the API's requests other than
// notifications (which Options.MaxNotificationBytes bounds).
const maxRequestBytes = 16 << 10

// realm is the WWW-Authenticate realm of a 401.
const realm = "ringcast"

// apiFunc serves one method of one route. user is the authenticated
// caller ("" on the public routes). It returns the status and the value
// written as JSON (nil: no body), or an error that writeError maps to a
// status.
type apiFunc func(r *http.Request, user string) (status int, body any, err error)

// route is one path of the API: its methods, and whether they need a
// bearer token.
type route struct {
	s       *Service
	public  bool
	methods map[string]apiFunc
	allow   string
}

// Handler returns the HTTP API (see the package documentation), to mount
// at the server's root: its routes all start with /api/. Every answer is
// JSON; an error is {"error":"…"} with the status of the package's error
// sentinels.
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	handle := func(path string, public bool, methods map[string]apiFunc) {
		names := make([]string, 0, len(methods))
		for m := range methods {
			names = append(names, m)
		}
		slices.Sort(names)
		mux.Handle(path, &route{s: s, public: public, methods: methods, allow: strings.Join(names, ", ")})
	}
	handle("/api/users", true, map[string]apiFunc{http.MethodPost: s.postUser})
	handle("/api/tokens", true, map[string]apiFunc{http.MethodPost: s.postToken})
	handle("/api/tokens/current", false, map[string]apiFunc{http.MethodDelete: s.deleteToken})
	handle("/api/topics", false, map[string]apiFunc{http.MethodGet: s.getTopics, http.MethodPost: s.postTopic})
	handle("/api/topics/{name}", false, map[string]apiFunc{http.MethodGet: s.getTopic, http.MethodDelete: s.deleteTopic})
	handle("/api/topics/{name}/notifications", false, map[string]apiFunc{http.MethodGet: s.getNotifications, http.MethodPost: s.postNotification})
	handle("/api/topics/{name}/notifications/{seq}/receipts", false, map[string]apiFunc{http.MethodGet: s.getReceipts})
	handle("/api/topics/{name}/subscription", false, map[string]apiFunc{
		http.MethodGet: s.getSubscription, http.MethodPut: s.putSubscription, http.MethodDelete: s.deleteSubscription})
	handle("/api/topics/{name}/read", false, map[string]apiFunc{http.MethodPost: s.postTopicRead})
	handle("/api/read", false, map[string]apiFunc{http.MethodPost: s.postReadAll})
	handle("/api/inbox", false, map[string]apiFunc{http.MethodGet: s.getInbox})
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, errorBody{"no such API route: " + r.URL.Path})
	})
	return mux
}

// errorBody is the JSON of an error answer.
type errorBody struct {
	Error string `json:"error"`
}

func (rt *route) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	fn := rt.methods[r.Method]
	if fn == nil {
		w.Header().Set("Allow", rt.allow)
		writeJSON(w, http.StatusMethodNotAllowed, errorBody{fmt.Sprintf("method %s not allowed: %s", r.Method, rt.allow)})
		return
	}
	var user string
	if !rt.public {
		tok, ok := bearer(r)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="`+realm+`"`)
			writeJSON(w, http.StatusUnauthorized, errorBody{"missing Authorization: Bearer <token>"})
			return
		}
		var err error
		if user, err = rt.s.Authenticate(r.Context(), tok); err != nil {
			rt.s.writeError(w, r, err)
			return
		}
	}
	status, body, err := fn(r, user)
	if err != nil {
		rt.s.writeError(w, r, err)
		return
	}
	if body == nil {
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(status)
		return
	}
	writeJSON(w, status, body)
}

// bearer returns the token of the request's Authorization: Bearer header.
func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

// writeJSON writes v as the JSON body of a status answer.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"internal error"}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// Status returns the HTTP status of an error of the package: 400, 401,
// 403, 404, 409, 413, 429, 503, and 500 for anything else.
func Status(err error) int {
	switch {
	case errors.Is(err, ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, ErrUnauthorized):
		return http.StatusUnauthorized
	case errors.Is(err, ErrForbidden):
		return http.StatusForbidden
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, ErrConflict):
		return http.StatusConflict
	case errors.Is(err, ErrTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, ErrRateLimited):
		return http.StatusTooManyRequests
	case errors.Is(err, ErrUnavailable):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// writeError answers err with its status and {"error":…}. A 500 is logged
// and its detail kept from the client.
func (s *Service) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status := Status(err)
	msg := strings.TrimPrefix(err.Error(), "notify: ")
	switch status {
	case http.StatusInternalServerError:
		s.log.Error("notify: API", "method", r.Method, "path", r.URL.Path, "err", err)
		msg = "internal error"
	case http.StatusServiceUnavailable:
		s.log.Warn("notify: API", "method", r.Method, "path", r.URL.Path, "err", err)
		msg = "temporarily unavailable: try again later"
		w.Header().Set("Retry-After", "1")
	case http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", `Bearer realm="`+realm+`", error="invalid_token"`)
	}
	var rl *rateLimitError
	if errors.As(err, &rl) {
		w.Header().Set("Retry-After", strconv.Itoa(max(1, int((rl.retry+time.Second-1)/time.Second))))
	}
	writeJSON(w, status, errorBody{msg})
}

// rateLimitError is ErrRateLimited with the time until a retry may pass.
type rateLimitError struct {
	what  string
	retry time.Duration
}

func (e *rateLimitError) Error() string {
	return fmt.Sprintf("%v: too many %s; try again in %s", ErrRateLimited, e.what, e.retry.Round(time.Second))
}
func (e *rateLimitError) Unwrap() error { return ErrRateLimited }

// decodeJSONBytes decodes data, one JSON object, into v, refusing
// unknown fields and trailing data (ErrInvalid).
func decodeJSONBytes(data []byte, v any) error {
	data = bytes.TrimSpace(data)
	if len(data) == 0 || data[0] != '{' {
		return fmt.Errorf("%w: the request body must be a JSON object", ErrInvalid)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: request body: %s", ErrInvalid, jsonProblem(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("%w: request body: data after the JSON object", ErrInvalid)
	}
	return nil
}

// jsonProblem describes a decoding error without Go type names.
func jsonProblem(err error) string {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		if te.Field != "" {
			return fmt.Sprintf("field %q has the wrong type (%s)", te.Field, te.Value)
		}
		return fmt.Sprintf("wrong type (%s)", te.Value)
	case errors.As(err, &se):
		return fmt.Sprintf("malformed JSON at byte %d", se.Offset)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "truncated JSON"
	}
	if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return "unknown field " + f
	}
	return "malformed JSON"
}

// signupRequest is POST /api/users.
type signupRequest struct {
	ID       string `json:"id"`
	Email    string `json:"email"`
	Password string `json:"password"`
}

// parseSignup decodes and checks a signup.
func parseSignup(data []byte) (signupRequest, error) {
	var req signupRequest
	if err := decodeJSONBytes(data, &req); err != nil {
		return req, err
	}
	if err := ValidateUserID(req.ID); err != nil {
		return req, err
	}
	if err := ValidateEmail(req.Email); err != nil {
		return req, err
	}
	return req, ValidatePassword(req.Password)
}

// loginRequest is POST /api/tokens.
type loginRequest struct {
	ID       string `json:"id"`
	Password string `json:"password"`
}

// parseLogin decodes and checks a login.
func parseLogin(data []byte) (loginRequest, error) {
	var req loginRequest
	if err := decodeJSONBytes(data, &req); err != nil {
		return req, err
	}
	if req.ID == "" || req.Password == "" {
		return req, fmt.Errorf("%w: id and password are required", ErrInvalid)
	}
	if len(req.ID) > MaxUserID || len(req.Password) > MaxPassword {
		return req, fmt.Errorf("%w: id or password too long", ErrInvalid)
	}
	return req, nil
}

// topicRequest is POST /api/topics.
type topicRequest struct {
	Name        string `json:"name"`
	Description string `json:"description"`
}

// parseTopic decodes and checks a new topic.
func parseTopic(data []byte) (topicRequest, error) {
	var req topicRequest
	if err := decodeJSONBytes(data, &req); err != nil {
		return req, err
	}
	if err := ValidateTopicName(req.Name); err != nil {
		return req, err
	}
	return req, validateDescription(req.Description)
}

// readRequest is POST /api/topics/{name}/read.
type readRequest struct {
	Seq *uint64 `json:"seq"`
}

// parseRead decodes and checks a read mark.
func parseRead(data []byte) (uint64, error) {
	var req readRequest
	if err := decodeJSONBytes(data, &req); err != nil {
		return 0, err
	}
	if req.Seq == nil {
		return 0, fmt.Errorf("%w: seq is required", ErrInvalid)
	}
	return *req.Seq, nil
}

// readBody reads a request body of at most limit bytes.
func readBody(r *http.Request, limit int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, fmt.Errorf("%w: the request body is larger than %d bytes", ErrTooLarge, mbe.Limit)
		}
		return nil, fmt.Errorf("%w: reading the request body: %w", ErrInvalid, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%w: the request body is larger than %d bytes", ErrTooLarge, limit)
	}
	return data, nil
}

// clientAddr is the address the login limiter counts a request under: the
// peer's IP (proxies' forwarding headers are not trusted).
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// limit counts an attempt of key against l.
func (s *Service) limit(l *limiter, what, key string) error {
	if l == nil {
		return nil
	}
	if ok, retry := l.allow(key, s.now()); !ok {
		return &rateLimitError{what: what, retry: retry}
	}
	return nil
}

func (s *Service) postUser(r *http.Request, _ string) (int, any, error) {
	if err := s.limit(s.signupsByAddr, "sign-ups from this address", clientAddr(r)); err != nil {
		return 0, nil, err
	}
	data, err := readBody(r, maxRequestBytes)
	if err != nil {
		return 0, nil, err
	}
	req, err := parseSignup(data)
	if err != nil {
		return 0, nil, err
	}
	if err := s.CreateUser(r.Context(), req.ID, req.Email, req.Password); err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, map[string]string{"id": req.ID, "email": req.Email}, nil
}

func (s *Service) postToken(r *http.Request, _ string) (int, any, error) {
	if err := s.limit(s.loginsByAddr, "login attempts from this address", clientAddr(r)); err != nil {
		return 0, nil, err
	}
	data, err := readBody(r, maxRequestBytes)
	if err != nil {
		return 0, nil, err
	}
	req, err := parseLogin(data)
	if err != nil {
		return 0, nil, err
	}
	if err := s.limit(s.loginsByUser, "login attempts for this user", req.ID); err != nil {
		return 0, nil, err
	}
	tok, err := s.Login(r.Context(), req.ID, req.Password)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, tok, nil
}

func (s *Service) deleteToken(r *http.Request, _ string) (int, any, error) {
	tok, _ := bearer(r)
	if err := s.RevokeToken(r.Context(), tok); err != nil {
		return 0, nil, err
	}
	return http.StatusNoContent, nil, nil
}

// boolParam reads an optional boolean query parameter: 1/0, true/false.
func boolParam(r *http.Request, name string) (bool, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("%w: %s=%q: want 1 or 0", ErrInvalid, name, v)
	}
	return b, nil
}

// uintParam reads an optional unsigned query parameter (0 when absent).
func uintParam(r *http.Request, name string) (uint64, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil || n > maxSeq {
		return 0, fmt.Errorf("%w: %s=%q: want a number from 0 to %d", ErrInvalid, name, v, maxSeq)
	}
	return n, nil
}

// limitParam reads the limit parameter: 0 when absent, else 1 to max.
func limitParam(r *http.Request, max int) (int, error) {
	v := r.URL.Query().Get("limit")
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > max {
		return 0, fmt.Errorf("%w: limit=%q: want 1 to %d", ErrInvalid, v, max)
	}
	return n, nil
}

// topicList is GET /api/topics's answer.
type topicList struct {
	Topics []Topic `json:"topics"`
	Next   *string `json:"next"`
}

func (s *Service) getTopics(r *http.Request, user string) (int, any, error) {
	var q TopicQuery
	var err error
	if q.Mine, err = boolParam(r, "mine"); err != nil {
		return 0, nil, err
	}
	if q.Subscribed, err = boolParam(r, "subscribed"); err != nil {
		return 0, nil, err
	}
	if q.Limit, err = limitParam(r, MaxTopicLimit); err != nil {
		return 0, nil, err
	}
	q.After = r.URL.Query().Get("cursor")
	topics, next, err := s.Topics(r.Context(), user, q)
	if err != nil {
		return 0, nil, err
	}
	out := topicList{Topics: topics}
	if next != "" {
		out.Next = &next
	}
	return http.StatusOK, out, nil
}

func (s *Service) postTopic(r *http.Request, user string) (int, any, error) {
	data, err := readBody(r, maxRequestBytes)
	if err != nil {
		return 0, nil, err
	}
	req, err := parseTopic(data)
	if err != nil {
		return 0, nil, err
	}
	t, err := s.CreateTopic(r.Context(), user, req.Name, req.Description)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, t, nil
}

func (s *Service) getTopic(r *http.Request, user string) (int, any, error) {
	t, err := s.Topic(r.Context(), user, r.PathValue("name"))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, t, nil
}

func (s *Service) deleteTopic(r *http.Request, user string) (int, any, error) {
	if err := s.DeleteTopic(r.Context(), user, r.PathValue("name")); err != nil {
		return 0, nil, err
	}
	return http.StatusNoContent, nil, nil
}

// publishedBody is POST /api/topics/{name}/notifications's answer.
type publishedBody struct {
	Seq   uint64 `json:"seq"`
	Epoch string `json:"epoch"`
}

func (s *Service) postNotification(r *http.Request, user string) (int, any, error) {
	name := r.PathValue("name")
	if err := ValidateTopicName(name); err != nil {
		return 0, nil, err
	}
	body, err := readBody(r, int64(s.opts.MaxNotificationBytes))
	if err != nil {
		return 0, nil, err
	}
	p, err := s.Publish(r.Context(), user, name, body)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, publishedBody{Seq: p.Seq, Epoch: strconv.FormatUint(p.Epoch, 10)}, nil
}

func (s *Service) getNotifications(r *http.Request, user string) (int, any, error) {
	var q NotificationQuery
	var err error
	if q.After, err = uintParam(r, "after"); err != nil {
		return 0, nil, err
	}
	if q.Before, err = uintParam(r, "before"); err != nil {
		return 0, nil, err
	}
	if q.Limit, err = limitParam(r, MaxNotificationLimit); err != nil {
		return 0, nil, err
	}
	page, err := s.Notifications(r.Context(), user, r.PathValue("name"), q)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, page, nil
}

func (s *Service) getReceipts(r *http.Request, user string) (int, any, error) {
	v := r.PathValue("seq")
	seq, err := strconv.ParseUint(v, 10, 64)
	if err != nil || seq > maxSeq {
		return 0, nil, fmt.Errorf("%w: notification %q: want a sequence number", ErrInvalid, v)
	}
	rc, err := s.Receipts(r.Context(), user, r.PathValue("name"), seq)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, rc, nil
}

func (s *Service) getSubscription(r *http.Request, user string) (int, any, error) {
	name := r.PathValue("name")
	if err := ValidateTopicName(name); err != nil {
		return 0, nil, err
	}
	subs, err := s.Subscriptions(r.Context(), user)
	if err != nil {
		return 0, nil, err
	}
	for _, st := range subs {
		if st.Name == name {
			return http.StatusOK, st, nil
		}
	}
	return 0, nil, fmt.Errorf("%w: you do not subscribe to topic %q", ErrNotFound, name)
}

func (s *Service) putSubscription(r *http.Request, user string) (int, any, error) {
	st, created, err := s.Subscribe(r.Context(), user, r.PathValue("name"))
	if err != nil {
		return 0, nil, err
	}
	if created {
		return http.StatusCreated, st, nil
	}
	return http.StatusOK, st, nil
}

func (s *Service) deleteSubscription(r *http.Request, user string) (int, any, error) {
	if err := s.Unsubscribe(r.Context(), user, r.PathValue("name")); err != nil {
		return 0, nil, err
	}
	return http.StatusNoContent, nil, nil
}

func (s *Service) postTopicRead(r *http.Request, user string) (int, any, error) {
	name := r.PathValue("name")
	if err := ValidateTopicName(name); err != nil {
		return 0, nil, err
	}
	data, err := readBody(r, maxRequestBytes)
	if err != nil {
		return 0, nil, err
	}
	seq, err := parseRead(data)
	if err != nil {
		return 0, nil, err
	}
	st, err := s.MarkRead(r.Context(), user, name, seq)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, st, nil
}

func (s *Service) postReadAll(r *http.Request, user string) (int, any, error) {
	if err := s.MarkAllRead(r.Context(), user); err != nil {
		return 0, nil, err
	}
	in, err := s.Inbox(r.Context(), user)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, in, nil
}

func (s *Service) getInbox(r *http.Request, user string) (int, any, error) {
	in, err := s.Inbox(r.Context(), user)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, in, nil
}
