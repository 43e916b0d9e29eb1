/**
 * Services a responder runs itself instead of connecting to TCP targets: what makes a proxy
 * the secrets gateway (DESIGN.md, `noisemesh gateway`: "a responder whose target ports are
 * bound to built-in services"). The session code is the proxy's own; only the target
 * differs: the decrypted stream goes to the service, which learns the initiator's verified
 * key from the call, never from anything the initiator sent.
 *
 * A proxy with built-in services has no TCP targets at all: a session to any other port
 * gets status 4 (target port not allowed), and plaintext that inbound capture receives for
 * any other port is refused.
 */
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { MeshPeer } from '../peers.js';

export interface BuiltInServices {
  /**
   * The application end of a session that `peer` (authenticated, its key valid at this
   * generation) opened to `targetPort`, or null when no service answers there (status 4).
   * The session writes the peer's plaintext to the stream and encrypts what the service
   * writes; ending the stream ends the session (END-OF-STREAM), destroying it aborts the
   * session, and the session destroys it when it is aborted (revocation included).
   */
  openMeshStream(targetPort: number, peer: MeshPeer): Duplex | null;
  /**
   * Takes a plaintext connection inbound capture received for the original destination
   * port `port` (permissive mode only: strict refuses it before this is asked). Returns
   * false when no service answers there: the proxy then resets the connection.
   */
  takePlaintext(port: number, socket: Socket): boolean;
}
