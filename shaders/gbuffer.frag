#version 330 core
// One depth layer of the G-buffer: (b0, b1, window depth, face index + 1); background is
// (0, 0, 1, 0). Layer k > 0 peels: it keeps only fragments strictly behind layer k - 1 in the
// order (depth, face id), and the depth test picks the nearest of those (lowest id on ties,
// since GL keeps primitive order and the test is LESS).
uniform sampler2DArray prev_layer;
uniform bool peel;
in vec2 v_bary;
flat in int v_view;
flat in int v_face;
out vec4 gbuffer;

// The depth attachment is 24-bit fixed point. Rounding the depth to that grid ourselves keeps
// the depth test, the stored depth and the peeling comparison in exact agreement.
const float DEPTH_STEPS = 16777215.0;

void main() {
    float depth = round(gl_FragCoord.z * DEPTH_STEPS) / DEPTH_STEPS;
    float id = float(v_face);
    if (peel) {
        vec4 prev = texelFetch(prev_layer, ivec3(gl_FragCoord.xy, v_view), 0);
        if (prev.w == 0.0 || depth < prev.z || (depth == prev.z && id <= prev.w)) {
            discard;
        }
    }
    gl_FragDepth = depth;
    gbuffer = vec4(v_bary, depth, id);
}
