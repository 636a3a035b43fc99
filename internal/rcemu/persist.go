package rcemu

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// Persistence of the emulator's state in Config.DataFile, so that what
// `rcsso setup --apply` (or a test, or the demo) changed survives a
// restart, as it does in a real Rocket.Chat whose settings, roles and
// permissions live in MongoDB.
//
// The file is JSON: {"format":1, "settings":{_id: value}, "roles":[…],
// "permissions":{_id: [role _id…]}, "users":[…]} where each user is the
// document Rocket.Chat keeps in its users collection (spec §5), in MongoDB
// extended JSON (the shape mongoexport writes). Users are kept only in
// memory mode; with Config.MongoURL they live in MongoDB.

// dataFormat is the version of the file layout.
const dataFormat = 1

// maxDataFile bounds the file read at start (64 MiB).
const maxDataFile = 64 << 20

type dataFile struct {
	Format      int                 `json:"format"`
	Settings    map[string]any      `json:"settings"`
	Roles       []dataRole          `json:"roles"`
	Permissions map[string][]string `json:"permissions"`
	Users       []json.RawMessage   `json:"users,omitempty"`
}

type dataRole struct {
	ID          string `json:"_id"`
	Name        string `json:"name"`
	Scope       string `json:"scope"`
	Description string `json:"description,omitempty"`
	Protected   bool   `json:"protected"`
}

// loadData reads Config.DataFile into s (before the admin is added). A
// missing file is no error: the first save creates it. It returns the
// number of users read.
func (s *Server) loadData() (int, error) {
	f, err := os.Open(s.cfg.DataFile)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("rcemu: data file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxDataFile+1))
	if err != nil {
		return 0, fmt.Errorf("rcemu: data file: %w", err)
	}
	if len(b) > maxDataFile {
		return 0, fmt.Errorf("rcemu: data file %s is larger than %d MiB", s.cfg.DataFile, maxDataFile>>20)
	}
	var d dataFile
	if err := json.Unmarshal(b, &d); err != nil {
		return 0, fmt.Errorf("rcemu: data file %s is not the emulator's JSON: %w", s.cfg.DataFile, err)
	}
	if d.Format != dataFormat {
		return 0, fmt.Errorf("rcemu: data file %s has format %d, want %d", s.cfg.DataFile, d.Format, dataFormat)
	}
	maps.Copy(s.settings, d.Settings)
	if len(d.Roles) > 0 {
		s.roles, s.roleOrder = map[string]*role{}, nil
		for _, r := range d.Roles {
			if r.ID == "" || s.roles[r.ID] != nil {
				return 0, fmt.Errorf("rcemu: data file %s: a role without an _id, or twice", s.cfg.DataFile)
			}
			s.roles[r.ID] = &role{id: r.ID, name: r.Name, scope: r.Scope, description: r.Description, protected: r.Protected, updatedAt: s.started}
			s.roleOrder = append(s.roleOrder, r.ID)
		}
	}
	if d.Permissions != nil {
		s.perms = map[string]*permission{}
		for id, roles := range d.Permissions {
			s.perms[id] = &permission{roles: slices.Clone(roles), updatedAt: s.started}
		}
	}
	if s.cfg.MongoURL != "" {
		return 0, nil
	}
	for i, raw := range d.Users {
		var doc bson.D
		if err := bson.UnmarshalExtJSON(raw, true, &doc); err != nil {
			return 0, fmt.Errorf("rcemu: data file %s: user %d: %w", s.cfg.DataFile, i, err)
		}
		rb, err := bson.Marshal(doc)
		if err != nil {
			return 0, fmt.Errorf("rcemu: data file %s: user %d: %w", s.cfg.DataFile, i, err)
		}
		u, err := userFromBSON(rb, &s.st.seq)
		if err != nil {
			return 0, fmt.Errorf("rcemu: data file %s: user %d: %w", s.cfg.DataFile, i, err)
		}
		if s.st.users[u.id] != nil || s.st.usernameTaken(u.username, "") {
			return 0, fmt.Errorf("rcemu: data file %s: user %d (%q) is there twice", s.cfg.DataFile, i, u.username)
		}
		s.st.insert(u)
	}
	return len(d.Users), nil
}

// Save writes the state to Config.DataFile (a no-op without one): a
// temporary file in the same directory, renamed over the old one, so a
// crash leaves either the old or the new state. Saves are serialised.
func (s *Server) Save() error {
	if s.cfg.DataFile == "" {
		return nil
	}
	s.saveMu.Lock()
	defer s.saveMu.Unlock()
	d := dataFile{Format: dataFormat, Permissions: map[string][]string{}}
	var users []bson.D
	s.mu.Lock()
	d.Settings = maps.Clone(s.settings)
	for _, id := range s.roleOrder {
		r := s.roles[id]
		d.Roles = append(d.Roles, dataRole{ID: r.id, Name: r.name, Scope: r.scope, Description: r.description, Protected: r.protected})
	}
	for id, p := range s.perms {
		d.Permissions[id] = slices.Clone(p.roles)
	}
	if s.cfg.MongoURL == "" {
		for _, id := range s.st.order {
			if u := s.st.users[id]; u != nil {
				users = append(users, userToBSON(u))
			}
		}
	}
	s.mu.Unlock()
	for _, u := range users {
		b, err := bson.MarshalExtJSON(u, true, false)
		if err != nil {
			return fmt.Errorf("rcemu: saving user: %w", err)
		}
		d.Users = append(d.Users, b)
	}
	b, err := json.MarshalIndent(d, "", " ")
	if err != nil {
		return fmt.Errorf("rcemu: saving: %w", err)
	}
	dir := filepath.Dir(s.cfg.DataFile)
	tmp, err := os.CreateTemp(dir, ".rcemu-data-*")
	if err != nil {
		return fmt.Errorf("rcemu: saving: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("rcemu: saving: %w", err)
	}
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("rcemu: saving: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("rcemu: saving: %w", err)
	}
	if err := os.Rename(tmp.Name(), s.cfg.DataFile); err != nil {
		return fmt.Errorf("rcemu: saving: %w", err)
	}
	return nil
}

// adoptAdmin makes admin the initial admin: an existing user with its
// username (from MongoDB or the data file) keeps its _id and documents but
// gets admin's password, the admin role, activation and admin's PAT; else
// admin is inserted. s.mu must be held.
func (s *Server) adoptAdmin(admin *user) {
	if old := s.st.byUsernameExact(admin.username); old != nil {
		old.bcrypt = admin.bcrypt
		old.active = true
		if !old.hasRole("admin") {
			old.roles = append(old.roles, "admin")
		}
		for _, t := range admin.tokens {
			if _, ok := old.findToken(t.hashedToken); !ok {
				old.tokens = append(old.tokens, t)
				old.hasResume = true
			}
		}
		s.adminID = old.id
		return
	}
	s.st.insert(admin)
	s.adminID = admin.id
}

// saveAfter reports whether a request may have changed state: anything
// but GET, HEAD and OPTIONS.
func saveAfter(method string) bool {
	switch method {
	case "GET", "HEAD", "OPTIONS":
		return false
	}
	return true
}
