package slacktest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
)

// File is a file shared with files.completeUploadExternal after its bytes
// were POSTed to the upload URL files.getUploadURLExternal returned.
type File struct {
	ID       string
	Filename string
	Title    string
	// Data is the uploaded content.
	Data []byte
	// ChannelID and ThreadTS say where it was shared.
	ChannelID string
	ThreadTS  string
	// InitialComment is the message text shared with the file, if any.
	InitialComment string

	length   int
	uploaded bool
}

// Files returns every shared file, in the order they were shared.
func (s *Server) Files() []File {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.files)
}

// WaitFiles waits until at least n files have been shared and returns them,
// or returns what was shared so far and an error when ctx ends.
func (s *Server) WaitFiles(ctx context.Context, n int) ([]File, error) {
	for {
		s.mu.Lock()
		files, changed := slices.Clone(s.files), s.changed
		s.mu.Unlock()
		if len(files) >= n {
			return files, nil
		}
		select {
		case <-ctx.Done():
			return files, fmt.Errorf("slacktest: %d of %d files arrived: %w", len(files), n, ctx.Err())
		case <-changed:
		}
	}
}

// getUploadURL answers files.getUploadURLExternal with an upload URL on
// this server.
func (s *Server) getUploadURL(w http.ResponseWriter, p params) {
	const method = "files.getUploadURLExternal"
	name := p.str("filename")
	length, err := strconv.Atoi(p.str("length"))
	if name == "" || err != nil || length <= 0 {
		s.answerError(w, method, http.StatusOK, errInvalidArgs)
		return
	}
	s.mu.Lock()
	s.seq++
	id := fmt.Sprintf("F%010d", s.seq)
	s.uploads[id] = &File{ID: id, Filename: name, length: length}
	s.mu.Unlock()
	s.answer(w, method, map[string]any{"upload_url": s.srv.URL + "/upload/" + id, "file_id": id})
}

// upload receives the bytes of a file, as Slack's upload URL does: a
// multipart form with a "file" part, or a raw body.
func (s *Server) upload(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if r.Method != http.MethodPost {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	var data []byte
	if f, _, err := r.FormFile("file"); err == nil {
		data, err = io.ReadAll(io.LimitReader(f, 50<<20))
		f.Close()
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
	} else {
		http.Error(w, "no file part: "+err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	u, ok := s.uploads[id]
	switch {
	case !ok:
		s.mu.Unlock()
		http.Error(w, "unknown upload", http.StatusNotFound)
		return
	case len(data) != u.length:
		s.mu.Unlock()
		http.Error(w, fmt.Sprintf("got %d bytes, announced %d", len(data), u.length), http.StatusBadRequest)
		return
	}
	u.Data, u.uploaded = data, true
	s.requests = append(s.requests, Request{Method: "upload", Status: http.StatusOK})
	s.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain")
	_, _ = fmt.Fprintf(w, "OK - %d", len(data))
}

// completeUpload answers files.completeUploadExternal: every file must have
// been uploaded; it is shared into channel_id (and thread_ts).
func (s *Server) completeUpload(w http.ResponseWriter, p params) {
	const method = "files.completeUploadExternal"
	var list []struct {
		ID    string `json:"id"`
		Title string `json:"title"`
	}
	if err := json.Unmarshal(p.raw("files"), &list); err != nil || len(list) == 0 {
		s.answerError(w, method, http.StatusOK, errInvalidArgs)
		return
	}
	channel := p.str("channel_id")
	s.mu.Lock()
	var shared []File
	for _, f := range list {
		u, ok := s.uploads[f.ID]
		if !ok || !u.uploaded {
			s.mu.Unlock()
			s.answerError(w, method, http.StatusOK, "file_not_found")
			return
		}
		c := *u
		c.Title = f.Title
		if channel != "" {
			c.ChannelID = s.channelIDLocked(channel)
		}
		c.ThreadTS = p.str("thread_ts")
		c.InitialComment = p.str("initial_comment")
		shared = append(shared, c)
	}
	var out []map[string]any
	for _, f := range shared {
		delete(s.uploads, f.ID)
		s.files = append(s.files, f)
		out = append(out, map[string]any{"id": f.ID, "title": f.Title})
	}
	s.notifyLocked()
	s.mu.Unlock()
	s.answer(w, method, map[string]any{"files": out})
}
