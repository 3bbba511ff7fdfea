package admin

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	imgota "github.com/piimage/piimage/image/ota"
	"github.com/piimage/piimage/services/ota"
)

// OTA serves the update routes of the authenticated API:
//
//	GET  /ota          the slots, the trial in progress, the last outcome (ota.Status)
//	GET  /ota/have     {"have": [sha256...]}: files the sender may omit
//	GET  /ota/root-chunks  the running root's chunk hashes, for a root delta
//	POST /ota/update   the payload stream (image/ota) as the body; answers
//	                   the ota.Result, or {"error": ..., "refused": true}
//	                   when nothing was written
type OTA struct {
	// Agent writes the updates. Required.
	Agent *ota.Agent
	// Updated, when set, is called in its own goroutine after an update
	// was written and its trial armed and the answer sent: it reboots
	// into the trial.
	Updated func(*ota.Result)
	// Log receives progress; nil means slog.Default().
	Log *slog.Logger
}

// UpdateError is the body of a failed POST /ota/update.
type UpdateError struct {
	Error string `json:"error"`
	// Refused says nothing was written.
	Refused bool `json:"refused"`
}

// Have is the body of GET /ota/have.
type Have struct {
	Have []string `json:"have"`
}

// RootChunks is the body of GET /ota/root-chunks.
type RootChunks struct {
	ChunkSize int      `json:"chunk_size"`
	Size      int64    `json:"size"`
	SHA256    []string `json:"sha256"`
}

func (o *OTA) register(mux *http.ServeMux) {
	mux.HandleFunc("GET /ota", o.serveStatus)
	mux.HandleFunc("GET /ota/have", o.serveHave)
	mux.HandleFunc("GET /ota/root-chunks", o.serveRootChunks)
	mux.HandleFunc("POST /ota/update", o.serveUpdate)
}

func (o *OTA) log() *slog.Logger {
	if o.Log != nil {
		return o.Log
	}
	return slog.Default()
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func (o *OTA) serveStatus(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, o.Agent.Status())
}

func (o *OTA) serveHave(w http.ResponseWriter, r *http.Request) {
	h := Have{Have: []string{}}
	for _, d := range o.Agent.Have() {
		h.Have = append(h.Have, d.String())
	}
	writeJSON(w, http.StatusOK, h)
}

func (o *OTA) serveRootChunks(w http.ResponseWriter, r *http.Request) {
	size, chunks, err := o.Agent.RootChunks()
	if err != nil {
		writeJSON(w, http.StatusNotFound, UpdateError{Error: err.Error()})
		return
	}
	rc := RootChunks{ChunkSize: imgota.ChunkSize, Size: size, SHA256: make([]string, len(chunks))}
	for i, d := range chunks {
		rc.SHA256[i] = d.String()
	}
	writeJSON(w, http.StatusOK, rc)
}

func (o *OTA) serveUpdate(w http.ResponseWriter, r *http.Request) {
	last := int64(-1)
	progress := func(p ota.Progress) {
		if p.Total == 0 {
			return
		}
		if tenth := p.Done * 10 / p.Total; tenth != last {
			last = tenth
			o.log().Info("update", "phase", p.Phase, "done", p.Done, "total", p.Total)
		}
	}
	res, err := o.Agent.Apply(r.Context(), r.Body, progress)
	if err != nil {
		var re *ota.RefusedError
		refused := errors.As(err, &re)
		code := http.StatusInternalServerError
		if refused {
			code = http.StatusUnprocessableEntity
		}
		o.log().Error("update failed", "err", err, "refused", refused)
		// The client may still be sending: the server closes the
		// connection after this answer.
		writeJSON(w, code, UpdateError{Error: err.Error(), Refused: refused})
		return
	}
	writeJSON(w, http.StatusOK, res)
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	if o.Updated != nil {
		go o.Updated(res)
	}
}
