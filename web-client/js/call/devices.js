// Camera and microphone: acquiring them with clear reasons when it fails, listing devices, and a
// microphone level from WebAudio.

export const VIDEO = { width: { ideal: 640 }, height: { ideal: 360 }, frameRate: { ideal: 24, max: 30 } };
const AUDIO = { echoCancellation: true, noiseSuppression: true, autoGainControl: true };

/** Resolves to { stream, problem } where problem names why there is less than asked for. */
export async function acquire({ audioId, videoId, video = true } = {}) {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) return { stream: null, problem: 'insecure' };
  const audio = audioId ? { ...AUDIO, deviceId: { exact: audioId } } : AUDIO;
  const vid = video ? (videoId ? { ...VIDEO, deviceId: { exact: videoId } } : VIDEO) : false;
  try {
    return { stream: await navigator.mediaDevices.getUserMedia({ audio, video: vid }), problem: null };
  } catch (e) {
    if (e.name === 'NotAllowedError' || e.name === 'SecurityError') return { stream: null, problem: 'denied' };
    if (vid && (e.name === 'NotFoundError' || e.name === 'OverconstrainedError' || e.name === 'NotReadableError')) {
      // No usable camera: a voice call is still a visit.
      try {
        const stream = await navigator.mediaDevices.getUserMedia({ audio, video: false });
        return { stream, problem: e.name === 'NotReadableError' ? 'camera_busy' : 'no_camera' };
      } catch (e2) {
        return { stream: null, problem: e2.name === 'NotAllowedError' ? 'denied' : 'no_devices' };
      }
    }
    if (e.name === 'NotFoundError') return { stream: null, problem: 'no_devices' };
    return { stream: null, problem: 'failed' };
  }
}

export async function listDevices() {
  const all = await navigator.mediaDevices.enumerateDevices();
  return { audio: all.filter((d) => d.kind === 'audioinput'), video: all.filter((d) => d.kind === 'videoinput') };
}

/** Calls onLevel(0..1) about 15 times a second with the stream's microphone level; returns stop(). */
export function meter(stream, onLevel) {
  const track = stream && stream.getAudioTracks()[0];
  if (!track || !window.AudioContext) return () => {};
  const ctx = new AudioContext();
  const src = ctx.createMediaStreamSource(new MediaStream([track]));
  const an = ctx.createAnalyser();
  an.fftSize = 512;
  src.connect(an);
  const buf = new Uint8Array(an.fftSize);
  const timer = setInterval(() => {
    an.getByteTimeDomainData(buf);
    let sum = 0;
    for (const v of buf) sum += ((v - 128) / 128) ** 2;
    onLevel(Math.min(1, Math.sqrt(sum / buf.length) * 4));
  }, 66);
  return () => { clearInterval(timer); ctx.close(); };
}

export const stopStream = (stream) => stream && stream.getTracks().forEach((tr) => tr.stop());
