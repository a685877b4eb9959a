package api

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestAccessLog(t *testing.T) {
	var buf bytes.Buffer
	s := &Server{log: slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	h := s.logged(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := w.(http.Flusher); !ok {
			t.Error("the recorder hides http.Flusher: event streams would break")
		}
		w.WriteHeader(http.StatusTeapot)
		io.WriteString(w, "short and stout")
	}))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/v1/status?x=1", nil))
	line := buf.String()
	for _, want := range []string{`"msg":"http request"`, `"method":"GET"`, `"path":"/v1/status"`, `"status":418`, `"bytes":15`} {
		if !strings.Contains(line, want) {
			t.Errorf("log line %s lacks %s", line, want)
		}
	}
	buf.Reset()
	s.log = slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/v1/status", nil))
	if buf.Len() != 0 {
		t.Errorf("logged at info level: %s", buf.String())
	}
}
