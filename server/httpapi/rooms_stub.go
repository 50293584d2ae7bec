package httpapi

import "net/http"

func (s *Server) roomRoutes()                                      {}
func (s *Server) syncRoutes()                                      {}
func (s *Server) updateMemberProfiles(r *http.Request, uid string) {}
