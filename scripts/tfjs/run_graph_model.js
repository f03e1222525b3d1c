// Runs a TensorFlow.js graph model (model.json + weight shards on disk) in TF.js itself — the
// original runtime of pixdex's detector weights — on raw float32 input tensors, and writes each
// requested output as raw float32. Used by scripts/build_detector_reference.py; needs the npm
// packages @tensorflow/tfjs and @tensorflow/tfjs-backend-wasm (installed by that script).
//
//   node run_graph_model.js MODEL_JSON INPUT_NAME SHAPE_JSON OUTPUTS_CSV IN.bin OUT_PREFIX [...]
//
// Several IN.bin OUT_PREFIX pairs may follow: the model is loaded once.
'use strict';
const fs = require('fs');
const path = require('path');
const tf = require('@tensorflow/tfjs');
require('@tensorflow/tfjs-backend-wasm');

function loadHandler(modelJson) {
  const dir = path.dirname(modelJson);
  const model = JSON.parse(fs.readFileSync(modelJson));
  const specs = [];
  const shards = [];
  for (const group of model.weightsManifest) {
    specs.push(...group.weights);
    for (const p of group.paths) shards.push(fs.readFileSync(path.join(dir, p)));
  }
  const all = Buffer.concat(shards);
  return tf.io.fromMemory({
    modelTopology: model.modelTopology,
    weightSpecs: specs,
    weightData: all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength),
    format: model.format,
    generatedBy: model.generatedBy,
    convertedBy: model.convertedBy,
    signature: model.signature,
  });
}

async function main() {
  const [modelJson, inputName, shapeJson, outputsCsv, ...pairs] = process.argv.slice(2);
  await tf.setBackend('wasm');
  await tf.ready();
  const model = await tf.loadGraphModel(loadHandler(modelJson));
  const shape = JSON.parse(shapeJson);
  const outputs = outputsCsv.split(',');
  for (let i = 0; i < pairs.length; i += 2) {
    const raw = fs.readFileSync(pairs[i]);
    const x = tf.tensor(new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4), shape);
    const result = model.execute({ [inputName]: x }, outputs);
    const list = Array.isArray(result) ? result : [result];
    for (let j = 0; j < outputs.length; j++) {
      const data = await list[j].data();
      fs.writeFileSync(`${pairs[i + 1]}.${j}.bin`, Buffer.from(data.buffer, data.byteOffset, data.byteLength));
    }
    tf.dispose([x, ...list]);
  }
  console.log(`tfjs ${tf.version.tfjs} backend ${tf.getBackend()}: ${pairs.length / 2} input(s)`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
