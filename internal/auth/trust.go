package auth

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mciv/mciv/internal/wire"
	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"
)

// AccountName is the NATS account every mciv part lives in.
const AccountName = "MCIV"

// DefaultMaxStore bounds what the MCIV account may keep in JetStream files.
const DefaultMaxStore int64 = 8 << 30

// Files of a trust directory. Seeds are secrets (mode 0600, in a 0700
// directory); JWTs are public but signed.
const (
	operatorSeedFile = "operator.nk"
	operatorJWTFile  = "operator.jwt"
	systemSeedFile   = "system.nk"
	systemJWTFile    = "system.jwt"
	accountSeedFile  = "account.nk"
	accountJWTFile   = "account.jwt"
)

func signingSeedFile(r Role) string { return "signing-" + string(r) + ".nk" }

// Trust is the trust root: the operator, the system account, the MCIV
// account and one scoped signing key per role.
type Trust struct {
	OperatorJWT string
	SystemJWT   string
	AccountJWT  string
	SystemKey   string // the system account's public key
	AccountKey  string // the MCIV account's public key

	signers map[Role]nkeys.KeyPair // nil when only the JWTs were loaded
}

// InitOptions tunes Init.
type InitOptions struct {
	// MaxStore bounds the MCIV account's JetStream file storage (bytes);
	// 0 means DefaultMaxStore.
	MaxStore int64
}

// Init creates a new trust root in dir (created with mode 0700). It refuses
// to overwrite one that exists.
func Init(dir string, opts InitOptions) (*Trust, error) {
	if opts.MaxStore == 0 {
		opts.MaxStore = DefaultMaxStore
	}
	if _, err := os.Stat(filepath.Join(dir, accountSeedFile)); err == nil {
		return nil, fmt.Errorf("auth init: %s already holds a trust root; remove it first to start over", dir)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("auth init: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("auth init: %w", err)
	}
	opKP, err := nkeys.CreateOperator()
	if err != nil {
		return nil, fmt.Errorf("auth init: operator key: %w", err)
	}
	sysKP, err := nkeys.CreateAccount()
	if err != nil {
		return nil, fmt.Errorf("auth init: system account key: %w", err)
	}
	accKP, err := nkeys.CreateAccount()
	if err != nil {
		return nil, fmt.Errorf("auth init: account key: %w", err)
	}
	opPub, _ := opKP.PublicKey()
	sysPub, _ := sysKP.PublicKey()
	accPub, _ := accKP.PublicKey()

	oc := jwt.NewOperatorClaims(opPub)
	oc.Name = "mciv"
	oc.SystemAccount = sysPub
	opJWT, err := oc.Encode(opKP)
	if err != nil {
		return nil, fmt.Errorf("auth init: operator jwt: %w", err)
	}
	sc := jwt.NewAccountClaims(sysPub)
	sc.Name = "SYS"
	sysJWT, err := sc.Encode(opKP)
	if err != nil {
		return nil, fmt.Errorf("auth init: system account jwt: %w", err)
	}

	ac := jwt.NewAccountClaims(accPub)
	ac.Name = AccountName
	ac.Limits.JetStreamLimits = jwt.JetStreamLimits{
		MemoryStorage: 64 << 20, DiskStorage: opts.MaxStore, Streams: -1, Consumer: -1, MaxAckPending: -1,
	}
	t := &Trust{SystemKey: sysPub, AccountKey: accPub, signers: map[Role]nkeys.KeyPair{}}
	for _, r := range Roles {
		kp, err := nkeys.CreateAccount()
		if err != nil {
			return nil, fmt.Errorf("auth init: signing key for %s: %w", r, err)
		}
		t.signers[r] = kp
		pub, _ := kp.PublicKey()
		us := jwt.NewUserScope()
		us.Key = pub
		us.Role = string(r)
		us.Description = "mciv " + string(r)
		us.Template.Permissions = Permissions(r)
		ac.SigningKeys.AddScopedSigner(us)
	}
	accJWT, err := ac.Encode(opKP)
	if err != nil {
		return nil, fmt.Errorf("auth init: account jwt: %w", err)
	}
	t.OperatorJWT, t.SystemJWT, t.AccountJWT = opJWT, sysJWT, accJWT

	files := map[string][]byte{
		operatorJWTFile: []byte(opJWT), systemJWTFile: []byte(sysJWT), accountJWTFile: []byte(accJWT),
	}
	for name, kp := range map[string]nkeys.KeyPair{operatorSeedFile: opKP, systemSeedFile: sysKP, accountSeedFile: accKP} {
		seed, _ := kp.Seed()
		files[name] = seed
	}
	for r, kp := range t.signers {
		seed, _ := kp.Seed()
		files[signingSeedFile(r)] = seed
	}
	for name, data := range files {
		if err := WriteSecret(filepath.Join(dir, name), data); err != nil {
			return nil, fmt.Errorf("auth init: %w", err)
		}
	}
	return t, nil
}

// Load reads the trust root in dir. The signing keys are optional: a
// directory holding only the JWTs configures a server but cannot issue.
func Load(dir string) (*Trust, error) {
	read := func(name string) (string, error) {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return "", fmt.Errorf("auth: trust root %s: %w (create one with `mciv auth init --dir %s`)", dir, err, dir)
		}
		return strings.TrimSpace(string(data)), nil
	}
	t := &Trust{signers: map[Role]nkeys.KeyPair{}}
	var err error
	if t.OperatorJWT, err = read(operatorJWTFile); err != nil {
		return nil, err
	}
	if t.SystemJWT, err = read(systemJWTFile); err != nil {
		return nil, err
	}
	if t.AccountJWT, err = read(accountJWTFile); err != nil {
		return nil, err
	}
	sc, err := jwt.DecodeAccountClaims(t.SystemJWT)
	if err != nil {
		return nil, fmt.Errorf("auth: %s: %w", systemJWTFile, err)
	}
	ac, err := jwt.DecodeAccountClaims(t.AccountJWT)
	if err != nil {
		return nil, fmt.Errorf("auth: %s: %w", accountJWTFile, err)
	}
	t.SystemKey, t.AccountKey = sc.Subject, ac.Subject
	for _, r := range Roles {
		path := filepath.Join(dir, signingSeedFile(r))
		seed, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("auth: %w", err)
		}
		kp, err := nkeys.FromSeed([]byte(strings.TrimSpace(string(seed))))
		if err != nil {
			return nil, fmt.Errorf("auth: %s: not an nkey seed", path) // never the seed itself
		}
		pub, _ := kp.PublicKey()
		if _, ok := ac.SigningKeys.GetScope(pub); !ok {
			return nil, fmt.Errorf("auth: %s is not a signing key of account %s", path, t.AccountKey)
		}
		t.signers[r] = kp
	}
	return t, nil
}

// Identity names a credential: its role, database cluster and name (the
// host for a collector; any name for the others).
type Identity struct {
	Role    Role
	Cluster string
	Name    string
}

// Validate says why id cannot be issued.
func (id Identity) Validate() error {
	if _, err := ParseRole(string(id.Role)); err != nil {
		return err
	}
	if err := wire.ValidToken(id.Cluster); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	if id.Cluster != strings.ToLower(id.Cluster) {
		return fmt.Errorf("cluster %q: NATS lower-cases JWT tags, so clusters with credentials are lower case", id.Cluster)
	}
	if err := wire.ValidToken(id.Name); err != nil {
		return fmt.Errorf("name: %w", err)
	}
	return nil
}

// Credential is an issued user: the JWT and its nkey seed.
type Credential struct {
	JWT  string
	Seed []byte
}

// CredsFile is the credential in the .creds format nats.go and the nats
// CLI read.
func (c Credential) CredsFile() ([]byte, error) {
	return jwt.FormatUserConfig(c.JWT, c.Seed)
}

// Issue creates a user for id, signed by the role's scoped signing key, so
// that the server applies the role's permission template to it. ttl 0
// means no expiry.
func (t *Trust) Issue(id Identity, ttl time.Duration) (Credential, error) {
	if err := id.Validate(); err != nil {
		return Credential{}, fmt.Errorf("auth issue: %w", err)
	}
	signer, ok := t.signers[id.Role]
	if !ok {
		return Credential{}, fmt.Errorf("auth issue: the trust root has no signing key for role %s", id.Role)
	}
	ukp, err := nkeys.CreateUser()
	if err != nil {
		return Credential{}, fmt.Errorf("auth issue: %w", err)
	}
	upub, _ := ukp.PublicKey()
	uc := jwt.NewUserClaims(upub)
	uc.Name = id.Name
	uc.IssuerAccount = t.AccountKey
	uc.Tags.Add(TagRole+":"+string(id.Role), TagCluster+":"+id.Cluster)
	uc.SetScoped(true)
	if ttl > 0 {
		uc.Expires = time.Now().Add(ttl).Unix()
	}
	token, err := uc.Encode(signer)
	if err != nil {
		return Credential{}, fmt.Errorf("auth issue: %w", err)
	}
	seed, _ := ukp.Seed()
	return Credential{JWT: token, Seed: seed}, nil
}

// IdentityOf reads the identity a user JWT was issued for.
func IdentityOf(userJWT string) (Identity, error) {
	uc, err := jwt.DecodeUserClaims(userJWT)
	if err != nil {
		return Identity{}, fmt.Errorf("auth: user jwt: %w", err)
	}
	id := Identity{Name: uc.Name}
	for _, t := range uc.Tags {
		if v, ok := strings.CutPrefix(t, TagRole+":"); ok {
			id.Role = Role(v)
		}
		if v, ok := strings.CutPrefix(t, TagCluster+":"); ok {
			id.Cluster = v
		}
	}
	if id.Role == "" || id.Cluster == "" {
		return Identity{}, fmt.Errorf("auth: user jwt %q carries no mciv role and cluster tags", uc.Name)
	}
	return id, nil
}

// IdentityOfCredsFile reads the identity of a .creds file.
func IdentityOfCredsFile(path string) (Identity, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Identity{}, fmt.Errorf("auth: %w", err)
	}
	token, err := jwt.ParseDecoratedJWT(data)
	if err != nil {
		return Identity{}, fmt.Errorf("auth: %s: %w", path, err)
	}
	return IdentityOf(token)
}
