/** How the proxy process sets up the runtime it runs in. */
export { tuneHeapForProxy, PROXY_V8_FLAGS } from './heap-tuning.js';
