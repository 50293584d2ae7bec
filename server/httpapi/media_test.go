package httpapi_test

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"

	"myelin/server/httpapi"
)

func TestMedia(t *testing.T) {
	ts := startServer(t, func(c *httpapi.Config) { c.MaxUploadBytes = 1 << 20 })
	a := ts.register("alice")
	upload := func(ct string, body []byte) (*http.Response, []byte) {
		req, _ := http.NewRequest("POST", ts.base+"/_matrix/media/v3/upload?filename=a.html", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+a.token)
		req.Header.Set("Content-Type", ct)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		raw, _ := io.ReadAll(res.Body)
		return res, raw
	}
	res, raw := upload("text/html", []byte("<script>alert(1)</script>"))
	if res.StatusCode != 200 || !strings.Contains(string(raw), "mxc://test.local/") {
		t.Fatalf("upload: %d %s", res.StatusCode, raw)
	}
	id := strings.TrimSuffix(strings.SplitN(string(raw), "mxc://test.local/", 2)[1], `"}`)
	for _, p := range []string{"/_matrix/client/v1/media/download/test.local/" + id, "/_matrix/media/v3/download/test.local/" + id + "/x.html",
		"/_matrix/client/v1/media/thumbnail/test.local/" + id + "?width=32&height=32"} {
		tok := a.token
		if strings.HasPrefix(p, "/_matrix/media/") {
			tok = ""
		}
		r := ts.must(200, "GET", p, tok, nil)
		if string(r.raw) != "<script>alert(1)</script>" {
			t.Errorf("%s: body %q", p, r.raw)
		}
		// HTML must never render inline on this origin.
		if !strings.HasPrefix(r.header.Get("Content-Disposition"), "attachment") || !strings.Contains(r.header.Get("Content-Security-Policy"), "sandbox") {
			t.Errorf("%s: unsafe headers %v", p, r.header)
		}
	}
	ts.must(401, "GET", "/_matrix/client/v1/media/download/test.local/"+id, "", nil)
	ts.must(404, "GET", "/_matrix/client/v1/media/download/other.server/"+id, a.token, nil)
	ts.must(404, "GET", "/_matrix/client/v1/media/download/test.local/nope", a.token, nil)
	res, _ = upload("image/png", []byte("png"))
	if res.StatusCode != 200 {
		t.Fatalf("png upload: %d", res.StatusCode)
	}
	res, raw = upload("application/octet-stream", make([]byte, 2<<20))
	if res.StatusCode != 413 || !strings.Contains(string(raw), "M_TOO_LARGE") {
		t.Errorf("big upload: %d %s", res.StatusCode, raw)
	}
	if r := ts.must(200, "GET", "/_matrix/client/v1/media/config", a.token, nil); r.body["m.upload.size"] != float64(1<<20) {
		t.Errorf("config: %s", r.raw)
	}
}
