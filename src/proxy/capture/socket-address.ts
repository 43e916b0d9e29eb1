/** A TCP endpoint: what the app dialled (original destination), a client, a server. */
export interface SocketAddress {
  /** Textual IP, as inet_ntop writes it: `10.0.3.7`, `fd00:251:1::2`. Never v4-mapped. */
  readonly address: string;
  readonly port: number;
  readonly family: 4 | 6;
}

/** `10.0.3.7:5432`, `[fd00::2]:5432`: for logs and error messages. */
export function formatSocketAddress(a: SocketAddress): string {
  return a.family === 6 ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
}
