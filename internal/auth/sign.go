package auth

import (
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// Headers of a signed message. NATS stamps no verified sender on a
// message (a JetStream stream stores what was published, not who
// published it), so a part that must know who sent a message, such as the
// actuator reading an approval, needs the sender's signature: the sender
// signs the subject and payload with the nkey of its own NATS user, and
// sends its user JWT beside the signature. A reader that trusts the MCIV
// account (its JWT is public) checks that the JWT was issued by one of the
// account's scoped signing keys, whose scope names the role, and that the
// signature is the JWT's key's. An operator's credential, though it may
// publish acks, cannot sign as the notifier.
const (
	HeaderSigner    = "Mciv-Signer"    // the sender's user JWT
	HeaderSignature = "Mciv-Signature" // base64url ed25519 signature of subject "\n" payload
)

// Signer signs messages with one NATS user's key.
type Signer struct {
	jwt string
	kp  nkeys.KeyPair
}

// NewSigner returns a signer for the user of userJWT and its seed.
func NewSigner(userJWT string, seed []byte) (*Signer, error) {
	kp, err := nkeys.FromSeed(seed)
	if err != nil {
		return nil, errors.New("auth signer: not a user nkey seed") // never the seed
	}
	uc, err := jwt.DecodeUserClaims(userJWT)
	if err != nil {
		return nil, fmt.Errorf("auth signer: %w", err)
	}
	if pub, _ := kp.PublicKey(); pub != uc.Subject {
		return nil, errors.New("auth signer: the seed is not the JWT's user")
	}
	return &Signer{jwt: userJWT, kp: kp}, nil
}

// SignerFromCredsFile returns a signer for the user of a .creds file.
func SignerFromCredsFile(path string) (*Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("auth signer: %w", err)
	}
	token, err := jwt.ParseDecoratedJWT(data)
	if err != nil {
		return nil, fmt.Errorf("auth signer: %s: %w", path, err)
	}
	kp, err := jwt.ParseDecoratedUserNKey(data)
	if err != nil {
		return nil, fmt.Errorf("auth signer: %s: no user seed", path)
	}
	seed, _ := kp.Seed()
	return NewSigner(token, seed)
}

func signed(subject string, data []byte) []byte {
	b := make([]byte, 0, len(subject)+1+len(data))
	b = append(b, subject...)
	b = append(b, '\n')
	return append(b, data...)
}

// Identity is who the signer signs as (the tags of its JWT).
func (s *Signer) Identity() (Identity, error) { return IdentityOf(s.jwt) }

// Sign sets the signature headers of msg (its subject and data as they
// are). A nil Signer (auth off) leaves msg unsigned.
func (s *Signer) Sign(msg *nats.Msg) error {
	if s == nil {
		return nil
	}
	sig, err := s.kp.Sign(signed(msg.Subject, msg.Data))
	if err != nil {
		return fmt.Errorf("auth sign: %w", err)
	}
	if msg.Header == nil {
		msg.Header = nats.Header{}
	}
	msg.Header.Set(HeaderSigner, s.jwt)
	msg.Header.Set(HeaderSignature, base64.RawURLEncoding.EncodeToString(sig))
	return nil
}

// Verifier checks signed messages against the MCIV account.
type Verifier struct {
	account *jwt.AccountClaims
	now     func() time.Time
}

// NewVerifier trusts the account of accountJWT (Trust.AccountJWT).
func NewVerifier(accountJWT string) (*Verifier, error) {
	ac, err := jwt.DecodeAccountClaims(accountJWT)
	if err != nil {
		return nil, fmt.Errorf("auth verifier: %w", err)
	}
	return &Verifier{account: ac, now: time.Now}, nil
}

// Verify returns who signed a message published on subject with data and
// header h: the role is the scope of the signing key that issued the
// sender's JWT (not a tag the sender chose). Unsigned, badly signed,
// expired, revoked or foreign senders are errors.
func (v *Verifier) Verify(subject string, data []byte, h nats.Header) (Identity, error) {
	token, sig64 := h.Get(HeaderSigner), h.Get(HeaderSignature)
	if token == "" || sig64 == "" {
		return Identity{}, errors.New("unsigned message")
	}
	uc, err := jwt.DecodeUserClaims(token)
	if err != nil {
		return Identity{}, fmt.Errorf("signer jwt: %w", err)
	}
	if uc.IssuerAccount != v.account.Subject {
		return Identity{}, fmt.Errorf("signer %q is not of the MCIV account", uc.Name)
	}
	scope, ok := v.account.SigningKeys.GetScope(uc.Issuer)
	us, isUser := scope.(*jwt.UserScope)
	if !ok || !isUser {
		return Identity{}, fmt.Errorf("signer %q was not issued by a role's signing key", uc.Name)
	}
	now := v.now()
	if uc.Expires > 0 && now.Unix() > uc.Expires {
		return Identity{}, fmt.Errorf("signer %q: credential expired", uc.Name)
	}
	if v.account.Revocations.IsRevoked(uc.Subject, time.Unix(uc.IssuedAt, 0)) {
		return Identity{}, fmt.Errorf("signer %q: credential revoked", uc.Name)
	}
	sig, err := base64.RawURLEncoding.DecodeString(sig64)
	if err != nil {
		return Identity{}, errors.New("signature: not base64url")
	}
	pk, err := nkeys.FromPublicKey(uc.Subject)
	if err != nil {
		return Identity{}, fmt.Errorf("signer key: %w", err)
	}
	if err := pk.Verify(signed(subject, data), sig); err != nil {
		return Identity{}, fmt.Errorf("signer %q: bad signature", uc.Name)
	}
	id := Identity{Role: Role(us.Role), Name: uc.Name}
	if rid, err := IdentityOf(token); err == nil {
		id.Cluster = rid.Cluster
	}
	return id, nil
}
