package cli

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	imagesv1 "github.com/berth-project/berth/proto/services/images/v1"
)

// ConfigEnv names the directory of berth's client config (config.json),
// as DOCKER_CONFIG does docker's; the default is ~/.berth.
const ConfigEnv = "BERTH_CONFIG"

// dockerHubAuthKey is the key docker keeps Docker Hub's credentials under.
const dockerHubAuthKey = "https://index.docker.io/v1/"

// configFile is the client's config.json: docker's format, of which
// berth reads and writes "auths" and keeps the rest as it found it.
type configFile struct {
	path string
	raw  map[string]json.RawMessage
	auth map[string]authEntry
}

type authEntry struct {
	Auth          string `json:"auth,omitempty"`
	IdentityToken string `json:"identitytoken,omitempty"`
	RegistryToken string `json:"registrytoken,omitempty"`
}

func configPath() string {
	dir := os.Getenv(ConfigEnv)
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			home = "/root"
		}
		dir = filepath.Join(home, ".berth")
	}
	return filepath.Join(dir, "config.json")
}

func loadConfig() (*configFile, error) {
	c := &configFile{path: configPath(), raw: map[string]json.RawMessage{}, auth: map[string]authEntry{}}
	b, err := os.ReadFile(c.path)
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &c.raw); err != nil {
		return nil, fmt.Errorf("%s: %w", c.path, err)
	}
	if a, ok := c.raw["auths"]; ok {
		if err := json.Unmarshal(a, &c.auth); err != nil {
			return nil, fmt.Errorf("%s: auths: %w", c.path, err)
		}
	}
	return c, nil
}

func (c *configFile) save() error {
	a, err := json.Marshal(c.auth)
	if err != nil {
		return err
	}
	c.raw["auths"] = a
	b, err := json.MarshalIndent(c.raw, "", "\t")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(c.path), 0o700); err != nil {
		return err
	}
	tmp := c.path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, c.path)
}

// registryOf is the registry a reference names, as docker finds it: the
// first component when it looks like a host, else Docker Hub.
func registryOf(ref string) string {
	first, _, ok := strings.Cut(ref, "/")
	if ok && (strings.ContainsAny(first, ".:") || first == "localhost") {
		return first
	}
	return "docker.io"
}

// authKey is the key of a registry's credentials in config.json.
func authKey(server string) string {
	server = strings.TrimPrefix(strings.TrimPrefix(server, "https://"), "http://")
	server = strings.TrimSuffix(server, "/")
	switch server {
	case "", "docker.io", "index.docker.io", "registry-1.docker.io", "index.docker.io/v1":
		return dockerHubAuthKey
	}
	return server
}

// authFor reads the credentials config.json holds for the registry of
// ref; nil if none (or the file cannot be read: the pull goes anonymous
// and the registry says what it wants).
func authFor(ref string) *imagesv1.RegistryAuth {
	c, err := loadConfig()
	if err != nil {
		return nil
	}
	e, ok := c.auth[authKey(registryOf(ref))]
	if !ok {
		return nil
	}
	a := &imagesv1.RegistryAuth{IdentityToken: e.IdentityToken, RegistryToken: e.RegistryToken}
	if e.Auth != "" {
		b, err := base64.StdEncoding.DecodeString(e.Auth)
		if err == nil {
			a.Username, a.Password, _ = strings.Cut(string(b), ":")
		}
	}
	return a
}

// LoginOptions are the flags of `berth login`.
type LoginOptions struct {
	Username      string
	Password      string
	PasswordStdin bool
}

// Login stores credentials for server (Docker Hub if empty) in
// config.json, where pull and push find them. The registry checks them
// at the next pull or push.
func (cli *CLI) Login(ctx context.Context, server string, opts LoginOptions) error {
	if opts.PasswordStdin {
		if opts.Username == "" {
			return &UsageError{Err: errors.New("Must provide --username with --password-stdin")} //nolint:staticcheck // docker's words
		}
		b, err := io.ReadAll(cli.In)
		if err != nil {
			return err
		}
		opts.Password = strings.TrimRight(string(b), "\r\n")
	}
	if opts.Username == "" {
		fmt.Fprint(cli.Out, "Username: ")
		line, _ := bufio.NewReader(cli.In).ReadString('\n')
		opts.Username = strings.TrimSpace(line)
	}
	if opts.Username == "" || opts.Password == "" {
		return errors.New("Error: Cannot perform an interactive login from a non TTY device") //nolint:staticcheck // docker's words
	}
	// As docker's: the daemon checks the credentials with the registry
	// before the client keeps them.
	d, err := cli.client(ctx)
	if err != nil {
		return err
	}
	if _, err := d.Images().CheckLogin(ctx, &imagesv1.CheckLoginRequest{
		Server: server, Auth: &imagesv1.RegistryAuth{Username: opts.Username, Password: opts.Password},
	}); err != nil {
		return err
	}
	return cli.saveLogin(server, opts)
}

// saveLogin keeps checked credentials in config.json, as docker's client
// does.
func (cli *CLI) saveLogin(server string, opts LoginOptions) error {
	c, err := loadConfig()
	if err != nil {
		return err
	}
	c.auth[authKey(server)] = authEntry{Auth: base64.StdEncoding.EncodeToString([]byte(opts.Username + ":" + opts.Password))}
	if err := c.save(); err != nil {
		return err
	}
	fmt.Fprintf(cli.Err, "WARNING! Your credentials are stored unencrypted in '%s'.\n", c.path)
	fmt.Fprintln(cli.Out, "Login Succeeded")
	return nil
}

// Logout forgets the credentials of server.
func (cli *CLI) Logout(server string) error {
	c, err := loadConfig()
	if err != nil {
		return err
	}
	key := authKey(server)
	name := server
	if name == "" {
		name = dockerHubAuthKey
	}
	if _, ok := c.auth[key]; !ok {
		fmt.Fprintf(cli.Out, "Not logged in to %s\n", name)
		return nil
	}
	delete(c.auth, key)
	if err := c.save(); err != nil {
		return err
	}
	fmt.Fprintf(cli.Out, "Removing login credentials for %s\n", name)
	return nil
}
