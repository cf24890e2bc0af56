#!/usr/bin/python3
"""Writes the hand-made seed corpora of the fuzz targets (deterministic).

Run from anywhere: /usr/bin/python3 tests/fuzz/make_seeds.py
The image target also reads tests/fixtures/image/, and the safetensors and
config targets the tiny model under tests/fixtures/engine/ (named in
CMakeLists.txt and scripts/fuzz.sh), so those are not copied here.
Crashers found by fuzzing are added to corpus/<target>/ by hand, named
crash-<what>, and kept forever.
"""
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def put(target, name, data):
    d = os.path.join(HERE, 'corpus', target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode('utf-8')
    with open(os.path.join(d, name), 'wb') as f:
        f.write(data)


def safetensors(tensors, metadata=None, pad=b''):
    header = {}
    blob = b''
    for name, dtype, shape, raw in tensors:
        header[name] = {'dtype': dtype, 'shape': shape,
                        'data_offsets': [len(blob), len(blob) + len(raw)]}
        blob += raw
    if metadata is not None:
        header['__metadata__'] = metadata
    h = json.dumps(header, separators=(',', ':')).encode()
    return struct.pack('<Q', len(h)) + h + pad + blob


# ------------------------------------------------------------ safetensors
f32 = struct.pack('<6f', 1, -2, 3.5, 0, 1e30, -0.0)
f16 = struct.pack('<4H', 0x3c00, 0xc000, 0x7c00, 0x0001)
bf16 = struct.pack('<4H', 0x3f80, 0xc000, 0x7f80, 0x0001)
i64 = struct.pack('<2q', 0, 76)
put('safetensors', 'valid_mixed', safetensors([
    ('a.weight', 'F32', [2, 3], f32),
    ('b.weight', 'F16', [4], f16),
    ('c.bias', 'BF16', [2, 2], bf16),
    ('position_ids', 'I64', [1, 2], i64),
    ('scalar', 'F32', [], struct.pack('<f', 7)),
    ('empty', 'F32', [0, 5], b''),
], metadata={'format': 'pt'}))
put('safetensors', 'overlap', safetensors([
    ('a', 'F32', [2], struct.pack('<2f', 1, 2)),
])[:-8] + struct.pack('<2f', 1, 2))
put('safetensors', 'short_data', safetensors([('a', 'F32', [4], f32[:8])])[:-4])
h = b'{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,16]}}'
put('safetensors', 'dims_overflow', struct.pack('<Q', len(h)) + h + b'\0' * 16)
h = b'{"a":{"dtype":"F32","shape":[1,1,1,1,1,1,1,1,1],"data_offsets":[0,4]}}'
put('safetensors', 'too_many_dims', struct.pack('<Q', len(h)) + h + b'\0' * 4)
put('safetensors', 'header_len_huge', struct.pack('<Q', 1 << 62) + b'{}')
put('safetensors', 'pickle', b'\x80\x02}q\x00(X\x01\x00\x00\x00aq\x01K\x01u.')
h = b'{"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}}'
put('safetensors', 'offsets_reversed', struct.pack('<Q', len(h)) + h + b'\0' * 8)
h = b'{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}'
put('safetensors', 'negative_dim', struct.pack('<Q', len(h)) + h + b'\0' * 4)

# ------------------------------------------------------------ prompts
for i, p in enumerate([
    'a red heart',
    'a (red:1.4) heart, [blurry], ((sharp)), (((very sharp)))',
    'escaped \\(paren\\) and \\[bracket\\] and (unclosed',
    '(nested (deeper:1.2) and [mixed (weights:0.5)]:0.9)',
    '(:1.5)(x:-3)(y:1e308)(z:nan)(w:inf)',
    '<|startoftext|>hello<|endoftext|> it\'s they\'re we\'ve I\'m you\'ll he\'d',
    'caf\u00e9 na\u00efve \u00dcBER \u0130stanbul \u65e5\u672c\u8a9e \U0001f600 \u202eevil',
    'digits 1234567890 and a' + 'a' * 300 + ' long word',
    '(' * 200 + 'deep' + ')' * 200,
]):
    put('prompt', 'p%02d' % i, p)
put('prompt', 'p_invalid_utf8', b'bad \xff\xfe \xc3\x28 \xe2\x82 \xf0\x9f\x98 end')

# ------------------------------------------------------------ multipart
B = 'xYzZY'
body = ('--%s\r\nContent-Disposition: form-data; name="prompt"\r\n\r\na red heart\r\n'
        '--%s\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n'
        'Content-Type: image/png\r\n\r\n\x89PNG\r\n\x1a\n\r\n'
        '--%s\r\nContent-Disposition: form-data; name="n"\r\n\r\n2\r\n--%s--\r\n') % (B, B, B, B)
put('multipart', 'basic', 'multipart/form-data; boundary=%s\n%s' % (B, body))
put('multipart', 'quoted', 'multipart/form-data; charset=utf-8; boundary="a b:c"\n'
    '--a b:c\r\nContent-Disposition: form-data; name="x"\r\n\r\n\r\n--a b:c--')
put('multipart', 'unclosed', 'multipart/form-data; boundary=q\n--q\r\n'
    'Content-Disposition: form-data; name="x"\r\n\r\nno end')
put('multipart', 'preamble', 'multipart/form-data; boundary=q\npreamble\r\n--q\r\n'
    'Content-Disposition: form-data; name="x"\r\n\r\nv\r\n--q--\r\nepilogue')
put('multipart', 'no_headers_end', 'multipart/form-data; boundary=q\n--q\r\n'
    'Content-Disposition: form-data; name="x"\r\n')

# ------------------------------------------------------------ API requests
JSON, MULTI, NONE, JSONCS = 0, 1, 2, 3
IMAGES, NEED = 4, 8
reqs = {
    'gen_basic': (JSON, {'prompt': 'a red heart'}),
    'gen_all': (JSON, {'prompt': 'x', 'negative_prompt': 'y', 'n': 2, 'size': '64x64',
                       'steps': 4, 'guidance_scale': 7.5, 'seed': 42, 'sampler': 'ddim',
                       'strength': 0.5, 'response_format': 'url', 'output_format': 'webp'}),
    'gen_wh': (JSONCS, {'prompt': 'x', 'width': 64, 'height': 32, 'guidance': 3}),
    'gen_types': (JSON, {'prompt': 5, 'n': '2', 'size': [1], 'steps': 1.5}),
    'gen_huge': (JSON, {'prompt': 'x', 'n': 10 ** 30, 'seed': -1, 'size': '99999x99999'}),
}
for name, (flags, obj) in reqs.items():
    put('api_request', name, bytes([flags]) + json.dumps(obj).encode())
put('api_request', 'gen_dup', bytes([JSON]) + b'{"prompt":"a","prompt":"b"}')
put('api_request', 'gen_nan', bytes([JSON]) + b'{"prompt":"a","guidance":NaN}')
put('api_request', 'gen_deep', bytes([JSON]) + b'[' * 4000 + b']' * 4000)
put('api_request', 'no_ctype', bytes([NONE]) + b'{"prompt":"a"}')
put('api_request', 'edit_multi', bytes([MULTI | IMAGES | NEED]) + body.encode('latin-1'))
put('api_request', 'gen_multi', bytes([MULTI]) + body.encode('latin-1'))
