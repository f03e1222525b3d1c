// Runs face-api's own FaceRecognitionNet (dlib's ResNet face descriptor, TF.js) — the original
// runtime of the weights pixdex rebuilds as ONNX — on raw 150x150x3 float32 RGB chips, and writes
// each 128-d descriptor as raw float32. Used by scripts/build_face_reference.py; needs the npm
// packages @tensorflow/tfjs and @tensorflow/tfjs-backend-wasm (on NODE_PATH) and the unpacked
// @vladmandic/face-api package.
//
//   node run_face_api.js FACE_API_PACKAGE_DIR IN.bin OUT.bin [IN.bin OUT.bin ...]
'use strict';
const fs = require('fs');
const path = require('path');

async function main() {
  const [pkg, ...pairs] = process.argv.slice(2);
  const faceapi = require(path.join(pkg, 'dist', 'face-api.node-wasm.js'));
  await faceapi.tf.setBackend('wasm');
  await faceapi.tf.ready();
  await faceapi.nets.faceRecognitionNet.loadFromDisk(path.join(pkg, 'model'));
  for (let i = 0; i < pairs.length; i += 2) {
    const raw = fs.readFileSync(pairs[i]);
    const data = new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4);
    const chip = faceapi.tf.tensor3d(data, [150, 150, 3]);
    const descriptor = await faceapi.nets.faceRecognitionNet.computeFaceDescriptor(chip);
    fs.writeFileSync(pairs[i + 1], Buffer.from(descriptor.buffer, descriptor.byteOffset, descriptor.byteLength));
    chip.dispose();
  }
  console.log(`face-api ${faceapi.version} tfjs ${faceapi.tf.version_core} backend ${faceapi.tf.getBackend()}: ${pairs.length / 2} chip(s)`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
