// Command flynn-peer plays one side of a noisemesh session with github.com/flynn/noise, an
// independent Noise implementation, so that the interop test can hold noisemesh's Noise
// core against it.
//
// It speaks NMP/1 framing (PROTOCOL.md section 3) on stdin/stdout: the initiator sends the
// preamble 4E 4D 01 00, then every message in either direction is a u16 big-endian length
// and that many bytes of Noise message. After the IK handshake it answers each transport
// message with a transformed copy (bytes reversed, each XORed with 0xA5), so the same
// sizes travel both ways, until a zero-length plaintext (END-OF-STREAM, PROTOCOL.md
// section 5), which it answers with its own END-OF-STREAM before it expects end of file.
//
// Public parameters come as flags; the secrets (static private key, psk) come in the
// environment so that they never show in a process listing. Nothing secret is printed.
//
// stderr carries lines that start with "flynn-peer: ": "handshake {json}" once the
// handshake is complete, "done {json}" after END-OF-STREAM, "error <stage>: <reason>" on
// failure. The exit code names the stage that failed (see the exit* constants).
package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/flynn/noise"
	"golang.org/x/crypto/curve25519"
)

const (
	exitUsage     = 2 // bad flags or environment
	exitHandshake = 3 // a handshake message failed to decrypt or was malformed
	exitCheck     = 4 // the handshake completed but the peer's key or payload was not the expected one
	exitTransport = 5 // a transport message failed to decrypt or to encrypt
	exitFraming   = 6 // wrong preamble, zero or truncated frame, early end of file, data after END-OF-STREAM
)

// preamble is the initiator's first 4 bytes in NMP/1.
var preamble = []byte{0x4e, 0x4d, 0x01, 0x00}

const maxPlaintext = noise.MaxMsgLen - 16

func main() {
	var (
		protocol      = flag.String("protocol", "Noise_IK_25519_ChaChaPoly_BLAKE2s", "Noise protocol name: Noise_IK or Noise_IKpsk2, 25519, ChaChaPoly|AESGCM, SHA256|SHA512|BLAKE2s|BLAKE2b")
		role          = flag.String("role", "", "initiator or responder")
		remoteStatic  = flag.String("remote-static", "", "hex: the responder's static public key (initiator only: IK's pre-message)")
		expectStatic  = flag.String("expect-remote-static", "", "hex: the static public key the initiator must prove (responder only)")
		prologueHex   = flag.String("prologue", "", "hex: the prologue")
		payloadHex    = flag.String("payload", "", "hex: the payload this side puts in its handshake message")
		expectPayload = flag.String("expect-payload", "", "hex: the payload this side must receive in the peer's handshake message")
		rekeyEvery    = flag.Uint64("rekey-every", 0, "call Rekey() on each transport CipherState after every this many messages on it (0: never; NMP/1 uses 65536)")
	)
	flag.Parse()

	pattern, suite, err := parseProtocol(*protocol)
	if err != nil {
		fail(exitUsage, "usage", err.Error())
	}
	if *role != "initiator" && *role != "responder" {
		fail(exitUsage, "usage", "-role must be initiator or responder")
	}
	initiator := *role == "initiator"
	priv := mustHexEnv("NOISE_PEER_STATIC_PRIVATE", 32)
	pub, err := curve25519.X25519(priv, curve25519.Basepoint)
	if err != nil {
		fail(exitUsage, "usage", "NOISE_PEER_STATIC_PRIVATE is not a usable X25519 private key")
	}
	config := noise.Config{
		CipherSuite:   suite,
		Pattern:       noise.HandshakeIK,
		Initiator:     initiator,
		Prologue:      mustHex("-prologue", *prologueHex, -1),
		StaticKeypair: noise.DHKey{Private: priv, Public: pub},
	}
	if pattern == "IKpsk2" {
		config.PresharedKey = mustHexEnv("NOISE_PEER_PSK", 32)
		config.PresharedKeyPlacement = 2
	}
	var expectedRemote []byte
	if initiator {
		config.PeerStatic = mustHex("-remote-static", *remoteStatic, 32)
		expectedRemote = config.PeerStatic
	} else {
		if *remoteStatic != "" {
			fail(exitUsage, "usage", "-remote-static is for the initiator; give the responder -expect-remote-static")
		}
		expectedRemote = mustHex("-expect-remote-static", *expectStatic, 32)
	}
	payload := mustHex("-payload", *payloadHex, -1)
	wantPayload := mustHex("-expect-payload", *expectPayload, -1)

	hs, err := noise.NewHandshakeState(config)
	if err != nil {
		fail(exitUsage, "usage", err.Error())
	}

	in := bufio.NewReaderSize(os.Stdin, 1<<17)
	out := bufio.NewWriterSize(os.Stdout, 1<<17)
	peer := &framer{in: in, out: out}

	// IK: -> e, es, s, ss  <- e, ee, se (and psk at the end of message 2 for IKpsk2).
	var send, recv *noise.CipherState
	var gotPayload []byte
	if initiator {
		msg1, _, _, err := hs.WriteMessage(nil, payload)
		if err != nil {
			fail(exitHandshake, "handshake", "write message 1: "+err.Error())
		}
		peer.write(preamble)
		peer.writeFrame(msg1)
		msg2 := peer.readFrame("message 2")
		var cs1, cs2 *noise.CipherState
		gotPayload, cs1, cs2, err = hs.ReadMessage(nil, msg2)
		if err != nil {
			fail(exitHandshake, "handshake", "read message 2: "+err.Error())
		}
		send, recv = cs1, cs2
	} else {
		got := peer.readExactly(len(preamble), "preamble")
		if !bytes.Equal(got, preamble) {
			fail(exitFraming, "framing", fmt.Sprintf("wrong preamble %x", got))
		}
		msg1 := peer.readFrame("message 1")
		gotPayload, _, _, err = hs.ReadMessage(nil, msg1)
		if err != nil {
			fail(exitHandshake, "handshake", "read message 1: "+err.Error())
		}
		// Check before answering: a responder that does not know the initiator never
		// completes the handshake with it.
		if !bytes.Equal(hs.PeerStatic(), expectedRemote) {
			fail(exitCheck, "check", "the initiator's static key is not the expected one")
		}
		if !bytes.Equal(gotPayload, wantPayload) {
			fail(exitCheck, "check", fmt.Sprintf("message 1 payload: got %d bytes, not the expected %d", len(gotPayload), len(wantPayload)))
		}
		msg2, cs1, cs2, err := hs.WriteMessage(nil, payload)
		if err != nil {
			fail(exitHandshake, "handshake", "write message 2: "+err.Error())
		}
		peer.writeFrame(msg2)
		send, recv = cs2, cs1
	}
	if send == nil || recv == nil {
		fail(exitHandshake, "handshake", "the handshake did not complete after two messages")
	}
	if !bytes.Equal(hs.PeerStatic(), expectedRemote) {
		fail(exitCheck, "check", "the peer's static key is not the expected one")
	}
	if !bytes.Equal(gotPayload, wantPayload) {
		fail(exitCheck, "check", fmt.Sprintf("handshake payload: got %d bytes, not the expected %d", len(gotPayload), len(wantPayload)))
	}
	report("handshake", map[string]any{
		"protocol":      *protocol,
		"role":          *role,
		"localStatic":   hex.EncodeToString(pub),
		"remoteStatic":  hex.EncodeToString(hs.PeerStatic()),
		"payload":       hex.EncodeToString(gotPayload),
		"handshakeHash": hex.EncodeToString(hs.ChannelBinding()),
	})

	received, sent, bytesIn, rekeys := 0, 0, 0, 0
	// Rekey after every n messages on a CipherState, as PROTOCOL.md section 5 prescribes with
	// n = 65536; the test lowers n so that a short session crosses several rekeys.
	maybeRekey := func(cs *noise.CipherState, count int) {
		if *rekeyEvery > 0 && uint64(count)%*rekeyEvery == 0 {
			cs.Rekey()
			rekeys++
		}
	}
	sendMessage := func(pt []byte) {
		ct, err := send.Encrypt(nil, nil, pt)
		if err != nil {
			fail(exitTransport, "transport", fmt.Sprintf("encrypt message %d: %v", sent+1, err))
		}
		peer.writeFrame(ct)
		sent++
		maybeRekey(send, sent)
	}
	for {
		ct := peer.readFrame("a transport message")
		pt, err := recv.Decrypt(nil, nil, ct)
		if err != nil {
			fail(exitTransport, "transport", fmt.Sprintf("decrypt message %d: %v", received+1, err))
		}
		received++
		maybeRekey(recv, received)
		bytesIn += len(pt)
		if len(pt) == 0 {
			break
		}
		if len(pt) > maxPlaintext {
			fail(exitTransport, "transport", fmt.Sprintf("plaintext of %d bytes exceeds %d", len(pt), maxPlaintext))
		}
		sendMessage(transform(pt))
	}
	sendMessage(nil) // END-OF-STREAM
	// Nothing may follow END-OF-STREAM: the peer's next move is to close its side.
	if extra, err := in.ReadByte(); err != io.EOF {
		fail(exitFraming, "framing", fmt.Sprintf("data after END-OF-STREAM (byte %#x, err %v)", extra, err))
	}
	report("done", map[string]any{
		"received":       received,
		"sent":           sent,
		"rekeys":         rekeys,
		"plaintextBytes": bytesIn,
		"sendNonce":      send.Nonce(),
		"receiveNonce":   recv.Nonce(),
	})
}

// transform is what the peer answers: the bytes reversed, each XORed with 0xA5. It keeps
// the size, so a 65519-byte message travels back as one, and a peer that merely reflected
// ciphertext could not produce it.
func transform(p []byte) []byte {
	r := make([]byte, len(p))
	for i, b := range p {
		r[len(p)-1-i] = b ^ 0xa5
	}
	return r
}

func parseProtocol(name string) (string, noise.CipherSuite, error) {
	parts := strings.Split(name, "_")
	if len(parts) != 5 || parts[0] != "Noise" {
		return "", nil, fmt.Errorf("-protocol: expected Noise_<pattern>_25519_<cipher>_<hash>, got %q", name)
	}
	if parts[1] != "IK" && parts[1] != "IKpsk2" {
		return "", nil, fmt.Errorf("-protocol: pattern %q is not IK or IKpsk2", parts[1])
	}
	if parts[2] != "25519" {
		return "", nil, fmt.Errorf("-protocol: DH %q is not 25519", parts[2])
	}
	ciphers := map[string]noise.CipherFunc{"ChaChaPoly": noise.CipherChaChaPoly, "AESGCM": noise.CipherAESGCM}
	hashes := map[string]noise.HashFunc{"SHA256": noise.HashSHA256, "SHA512": noise.HashSHA512, "BLAKE2s": noise.HashBLAKE2s, "BLAKE2b": noise.HashBLAKE2b}
	cipher, ok := ciphers[parts[3]]
	if !ok {
		return "", nil, fmt.Errorf("-protocol: cipher %q is not ChaChaPoly or AESGCM", parts[3])
	}
	hash, ok := hashes[parts[4]]
	if !ok {
		return "", nil, fmt.Errorf("-protocol: hash %q is not SHA256, SHA512, BLAKE2s or BLAKE2b", parts[4])
	}
	suite := noise.NewCipherSuite(noise.DH25519, cipher, hash)
	// flynn derives the name from the suite; make sure it is the one asked for.
	if got := "Noise_" + parts[1] + "_" + string(suite.Name()); got != name {
		return "", nil, fmt.Errorf("-protocol: flynn/noise would run %q, not %q", got, name)
	}
	return parts[1], suite, nil
}

// framer reads and writes NMP/1 frames: u16 big-endian length, 1..65535, then the message.
type framer struct {
	in  *bufio.Reader
	out *bufio.Writer
}

func (f *framer) readExactly(n int, what string) []byte {
	buf := make([]byte, n)
	if _, err := io.ReadFull(f.in, buf); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			fail(exitFraming, "framing", "end of file before "+what)
		}
		fail(exitFraming, "framing", fmt.Sprintf("reading %s: %v", what, err))
	}
	return buf
}

func (f *framer) readFrame(what string) []byte {
	length := binary.BigEndian.Uint16(f.readExactly(2, "the length of "+what))
	if length == 0 {
		fail(exitFraming, "framing", "zero-length frame for "+what)
	}
	return f.readExactly(int(length), what)
}

func (f *framer) write(p []byte) {
	if _, err := f.out.Write(p); err != nil {
		fail(exitFraming, "framing", "write: "+err.Error())
	}
}

func (f *framer) writeFrame(msg []byte) {
	if len(msg) == 0 || len(msg) > noise.MaxMsgLen {
		fail(exitFraming, "framing", fmt.Sprintf("cannot frame a message of %d bytes", len(msg)))
	}
	var length [2]byte
	binary.BigEndian.PutUint16(length[:], uint16(len(msg)))
	f.write(length[:])
	f.write(msg)
	if err := f.out.Flush(); err != nil {
		fail(exitFraming, "framing", "flush: "+err.Error())
	}
}

func mustHex(what, s string, size int) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		fail(exitUsage, "usage", what+" is not hex")
	}
	if size >= 0 && len(b) != size {
		fail(exitUsage, "usage", fmt.Sprintf("%s must be %d bytes of hex, got %d bytes", what, size, len(b)))
	}
	return b
}

// mustHexEnv reads a secret; its value never appears in a message.
func mustHexEnv(name string, size int) []byte {
	v, ok := os.LookupEnv(name)
	if !ok {
		fail(exitUsage, "usage", name+" is not set: give it as hex in the environment")
	}
	return mustHex(name, v, size)
}

func report(what string, fields map[string]any) {
	line, err := json.Marshal(fields)
	if err != nil {
		fail(exitUsage, "report", err.Error())
	}
	fmt.Fprintf(os.Stderr, "flynn-peer: %s %s\n", what, line)
}

func fail(code int, stage, reason string) {
	fmt.Fprintf(os.Stderr, "flynn-peer: error %s: %s\n", stage, reason)
	os.Exit(code)
}
