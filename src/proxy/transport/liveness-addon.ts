import { addonPath, loadAddon, type AddonLoad } from '../../native/index.js';

/** What native/tcp_liveness.c exports; its header comment is the contract. */
export interface TcpLivenessAddon {
  /**
   * SO_KEEPALIVE on, with TCP_KEEPIDLE `idleSeconds` (1..32767), TCP_KEEPINTVL
   * `intervalSeconds` (1..32767), TCP_KEEPCNT `probes` (1..127) and TCP_USER_TIMEOUT
   * `userTimeoutMs` (0..2^31-1; 0 leaves the kernel's retransmission limit). Throws an Error
   * whose `code` is the errno name (EBADF: the descriptor is gone), a TypeError or a RangeError.
   */
  setLiveness(fd: number, idleSeconds: number, intervalSeconds: number, probes: number, userTimeoutMs: number): void;
  /** The same five values as the socket holds them now (getsockopt). */
  liveness(fd: number): TcpLiveness;
  /** TCP_USER_TIMEOUT alone, 0..2^31-1 ms (0: the kernel's retransmission limit). */
  setUserTimeout(fd: number, userTimeoutMs: number): void;
  /** From TCP_INFO (tcpi_unacked, tcpi_probes, tcpi_last_ack_recv). */
  tcpInfo(fd: number): TcpInfo;
}

export interface TcpInfo {
  /** Segments sent and not yet acknowledged. */
  readonly unacked: number;
  /** Zero-window or keepalive probes sent since the last ACK. */
  readonly probes: number;
  readonly lastAckRecvMs: number;
  /** Bytes in the kernel's send queue, unsent and unacknowledged (SIOCOUTQ). */
  readonly queuedBytes: number;
}

export interface TcpLiveness {
  readonly keepalive: boolean;
  readonly idleSeconds: number;
  readonly intervalSeconds: number;
  readonly probes: number;
  readonly userTimeoutMs: number;
}

export const TCP_LIVENESS_ADDON_PATH = addonPath('tcp_liveness');

const loaded = new Map<string, AddonLoad<TcpLivenessAddon>>();

/**
 * Loads the addon (once per path). Never throws: without it the proxy still runs, with
 * Node's keepalive only (MeshSocketLiveness says what is lost), so the caller decides how
 * loudly to say so.
 */
export function loadTcpLivenessAddon(path: string = TCP_LIVENESS_ADDON_PATH): AddonLoad<TcpLivenessAddon> {
  let result = loaded.get(path);
  if (result === undefined) {
    result = loadAddon<TcpLivenessAddon>(path, ['setLiveness', 'liveness', 'setUserTimeout', 'tcpInfo']);
    loaded.set(path, result);
  }
  return result;
}
