// The room's program, played by WHEP (`POST /whep/{room}`) with the browser's own
// RTCPeerConnection: `/rooms/{room}/watch?token=…` (a participant token that may subscribe).
// Nothing here is Tessera-specific beyond the URL: any WHEP player does the same.
//
// For tests and embedding, `window.tesseraWatch` holds the session's state, `stats()` (what
// getStats says of the two inbound streams) and `sample(x, y)` (the colour of the picture at
// a fraction of its width and height).
(() => {
  'use strict';
  const params = new URLSearchParams(location.search);
  const token = params.get('token') || '';
  const room = decodeURIComponent(location.pathname.split('/')[2] || '');
  const video = document.getElementById('program');
  const status = document.getElementById('status');
  const unmute = document.getElementById('unmute');
  const state = { room, resource: null, error: null, firstFrameMs: null, pc: null };
  window.tesseraWatch = state;

  const say = (text) => { status.firstChild.textContent = text; };

  // Our candidates go in the offer (WHEP without trickle): wait for them, a little.
  const gathered = (pc, ms) => new Promise((resolve) => {
    if (pc.iceGatheringState === 'complete') return resolve();
    const done = () => { if (pc.iceGatheringState === 'complete') resolve(); };
    pc.addEventListener('icegatheringstatechange', done);
    setTimeout(resolve, ms);
  });

  async function start() {
    const started = performance.now();
    const pc = new RTCPeerConnection();
    state.pc = pc;
    pc.addTransceiver('video', { direction: 'recvonly' });
    pc.addTransceiver('audio', { direction: 'recvonly' });
    const stream = new MediaStream();
    pc.ontrack = (e) => {
      stream.addTrack(e.track);
      video.srcObject = stream;
    };
    pc.onconnectionstatechange = () => {
      if (pc.connectionState === 'failed') say('connection lost');
    };
    await pc.setLocalDescription(await pc.createOffer());
    await gathered(pc, 2000);
    const answer = await fetch(`/whep/${encodeURIComponent(room)}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/sdp', Authorization: `Bearer ${token}` },
      body: pc.localDescription.sdp,
    });
    if (answer.status !== 201) {
      state.error = `${answer.status}: ${await answer.text()}`;
      say(`cannot watch: ${state.error}`);
      return;
    }
    state.resource = answer.headers.get('Location');
    await pc.setRemoteDescription({ type: 'answer', sdp: await answer.text() });
    const shown = () => {
      state.firstFrameMs = Math.round(performance.now() - started);
      say(`watching ${room}`);
      unmute.hidden = false;
    };
    if (video.requestVideoFrameCallback) video.requestVideoFrameCallback(shown);
    else video.addEventListener('playing', shown, { once: true });
  }

  unmute.addEventListener('click', () => { video.muted = false; unmute.hidden = true; });
  // Ends the session on the server when the page goes.
  window.addEventListener('pagehide', () => {
    if (!state.resource) return;
    fetch(state.resource, { method: 'DELETE', headers: { Authorization: `Bearer ${token}` }, keepalive: true });
  });

  state.stats = async () => {
    const out = {};
    if (!state.pc) return out;
    const report = await state.pc.getStats();
    report.forEach((s) => {
      if (s.type !== 'inbound-rtp') return;
      const codec = s.codecId && report.get(s.codecId);
      out[s.kind] = {
        packetsReceived: s.packetsReceived || 0,
        framesDecoded: s.framesDecoded || 0,
        frameWidth: s.frameWidth || 0,
        frameHeight: s.frameHeight || 0,
        keyFramesDecoded: s.keyFramesDecoded || 0,
        mimeType: codec ? codec.mimeType : null,
      };
    });
    return out;
  };

  const canvas = document.createElement('canvas');
  state.sample = (fx, fy) => {
    const w = video.videoWidth;
    const h = video.videoHeight;
    if (!w || !h) return null;
    canvas.width = w;
    canvas.height = h;
    const ctx = canvas.getContext('2d', { willReadFrequently: true });
    ctx.drawImage(video, 0, 0, w, h);
    const d = ctx.getImageData(Math.floor(fx * w), Math.floor(fy * h), 1, 1).data;
    return [d[0], d[1], d[2]];
  };

  start().catch((e) => { state.error = String(e); say(`cannot watch: ${state.error}`); });
})();
