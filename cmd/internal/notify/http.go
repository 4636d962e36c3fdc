package notify

import "net/http"

// Handler returns the HTTP API (see the package documentation), to mount
// at the server's root: its routes all start with /api/.
func (s *Service) Handler() http.Handler {
	return s.routes()
}

// routes is the API's mux.
func (s *Service) routes() http.Handler {
	return http.NotFoundHandler()
}
