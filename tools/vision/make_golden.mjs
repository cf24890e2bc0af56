// make_golden.mjs - golden face detections, landmarks and descriptors for the
// C portrait-rights check, computed by face-api's own JavaScript.
//
//     node tools/vision/make_golden.mjs            (from the repository root)
//
// Reads every tests/fixtures/vision/*.webp (lossless WebP, so the pixels are
// exactly what the C test decodes with libwebp; ImageMagick's `convert` turns
// them into raw RGB here), runs face-api's default pipeline
// (detectAllFaces with SSD MobileNet v1 -> withFaceLandmarks ->
// withFaceDescriptors) on TensorFlow.js's pure-JavaScript "cpu" backend, and
// writes <name>.golden.json beside each image. Takes about 10-15 s per image.
//
// Needs the dev dependencies from package.json (npm ci) and imagemagick.

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const tf = require('@tensorflow/tfjs');
const faceapi = require('@vladmandic/face-api/dist/face-api.node-wasm.js');

const root = process.cwd();
const fixtures = path.join(root, 'tests/fixtures/vision');
const modelDir = path.join(root, 'node_modules/@vladmandic/face-api/model');

function readPixels(file) {
    const size = execFileSync('identify', ['-format', '%w %h', file]).toString().trim();
    const [width, height] = size.split(' ').map(Number);
    const rgb = execFileSync('convert', [file, '-depth', '8', 'rgb:-'], {
        maxBuffer: 1 << 28,
    });
    if (rgb.length !== width * height * 3) throw new Error(`${file}: unexpected pixel count`);
    return { width, height, rgb };
}

const round = (v, digits = 5) => Number(v.toFixed(digits));

async function main() {
    await tf.setBackend('cpu');
    await tf.ready();
    await faceapi.nets.ssdMobilenetv1.loadFromDisk(modelDir);
    await faceapi.nets.faceLandmark68Net.loadFromDisk(modelDir);
    await faceapi.nets.faceRecognitionNet.loadFromDisk(modelDir);

    const files = fs.readdirSync(fixtures).filter((f) => f.endsWith('.webp')).sort();
    for (const file of files) {
        const t0 = Date.now();
        const { width, height, rgb } = readPixels(path.join(fixtures, file));
        const tensor = tf.tensor3d(Int32Array.from(rgb), [height, width, 3], 'int32');
        const options = new faceapi.SsdMobilenetv1Options({ minConfidence: 0.5, maxResults: 100 });
        const results = await faceapi
            .detectAllFaces(tensor, options)
            .withFaceLandmarks()
            .withFaceDescriptors();
        tensor.dispose();

        const faces = results.map((r) => {
            const box = r.detection.box;
            const aligned = r.landmarks.align(null, { useDlibAlignment: true });
            return {
                score: round(r.detection.score, 6),
                box: [box.x, box.y, box.width, box.height].map((v) => round(v, 4)),
                landmarks: r.landmarks.positions.map((p) => [round(p.x, 3), round(p.y, 3)]),
                aligned_rect: [aligned.x, aligned.y, aligned.width, aligned.height],
                descriptor: Array.from(r.descriptor).map((v) => round(v, 6)),
            };
        });
        const golden = {
            source: 'face-api 1.7.15, tfjs cpu backend, SsdMobilenetv1Options minConfidence 0.5',
            image: file,
            width,
            height,
            faces,
        };
        const out = path.join(fixtures, file.replace(/\.webp$/, '.golden.json'));
        fs.writeFileSync(out, `${JSON.stringify(golden)}\n`);
        console.log(`${file}: ${faces.length} faces, ${Date.now() - t0} ms`);
    }
}

main().catch((e) => {
    console.error(e);
    process.exit(1);
});
