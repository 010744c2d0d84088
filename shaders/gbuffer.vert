#version 330 core
// Draws non-indexed triangles: three consecutive vertices per face, in face order, so that
// gl_PrimitiveID is the face index and every corner can carry its own barycentric.
in vec4 in_clip;
out vec2 v_bary;

void main() {
    int corner = gl_VertexID % 3;
    v_bary = vec2(corner == 0, corner == 1);
    // GL stores framebuffer rows bottom-up; flipping y here puts the image's top row first in
    // memory (row 0 = top). The flip mirrors the winding, so the context culls with front = CW.
    gl_Position = vec4(in_clip.x, -in_clip.y, in_clip.z, in_clip.w);
}
