// The baseline of the signaling benchmark: the minimal WebSocket relay a team would write instead
// of a signaling server (no tokens, no waiting room, no audit, no limits beyond `ws` defaults).
// Not part of the product. The load generator's "plain" mode speaks its protocol:
//   first frame  {"type":"join","room":"<id>"}  -> {"type":"joined"} (at most two peers a room)
//   every later frame is sent as it is to the other peer of the room.
// Usage: node relay.js PORT   (prints "listening PORT" once it accepts connections)
'use strict';

const { WebSocketServer } = require('ws');

const port = Number(process.argv[2] || 0);
const rooms = new Map();
// Same frame limit as the signaling server.
const wss = new WebSocketServer({ host: '127.0.0.1', port, maxPayload: 64 * 1024 });

wss.on('listening', () => {
  console.log(`listening ${wss.address().port}`);
});

wss.on('connection', (ws) => {
  let room = null;
  ws.isAlive = true;
  ws.on('pong', () => {
    ws.isAlive = true;
  });
  ws.on('message', (data, isBinary) => {
    if (room === null) {
      let msg;
      try {
        msg = JSON.parse(data);
      } catch {
        ws.close(1008, 'malformed join');
        return;
      }
      if (!msg || msg.type !== 'join' || typeof msg.room !== 'string') {
        ws.close(1008, 'join first');
        return;
      }
      let peers = rooms.get(msg.room);
      if (!peers) {
        peers = new Set();
        rooms.set(msg.room, peers);
      }
      if (peers.size >= 2) {
        ws.close(1008, 'room full');
        return;
      }
      room = msg.room;
      peers.add(ws);
      ws.send('{"type":"joined"}');
      return;
    }
    for (const peer of rooms.get(room)) {
      if (peer !== ws) peer.send(data, { binary: isBinary });
    }
  });
  ws.on('close', () => {
    if (room === null) return;
    const peers = rooms.get(room);
    peers.delete(ws);
    if (peers.size === 0) rooms.delete(room);
  });
});

// The heartbeat of the `ws` README, at the signaling server's interval (20 s): dead peers go.
const heartbeat = setInterval(() => {
  for (const ws of wss.clients) {
    if (!ws.isAlive) {
      ws.terminate();
      continue;
    }
    ws.isAlive = false;
    ws.ping();
  }
}, 20000);

function stop() {
  clearInterval(heartbeat);
  for (const ws of wss.clients) ws.terminate();
  wss.close(() => process.exit(0));
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
