// common.cl — helpers shared by every SwiftCNN kernel file (prepended to each program).
// Counter-based RNG: must match CNNCore/RNG.swift `CounterRNG` bit for bit.
inline uint swiftcnn_hash32(uint x) {
    x ^= x >> 16; x *= 0x7feb352dU; x ^= x >> 15; x *= 0x846ca68bU; x ^= x >> 16;
    return x;
}
inline float swiftcnn_uniform(uint key, uint index) {
    uint h = swiftcnn_hash32(swiftcnn_hash32((index * 0x9e3779b1U) ^ key) + key);
    return (float)(h >> 8) * (1.0f / 16777216.0f);
}
