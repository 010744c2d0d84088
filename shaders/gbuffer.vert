#version 330 core
// One draw rasterizes a chunk of views, each into its own layer of the target array: a layered
// target gives every view exactly the viewport transform of a single-view render (tiling one tall
// framebuffer would shift window coordinates and so round differently), and the per-layer
// clipper keeps a triangle from bleeding into another view. Without an extension that lets the
// vertex shader pick the layer, the context draws one view per pass and everything lands in layer 0.
#extension GL_ARB_shader_viewport_layer_array : enable
#extension GL_AMD_vertex_shader_layer : enable

// Non-indexed triangles: three consecutive vertices per face, the views' faces back to back, so
// that every corner carries its own barycentric and the vertex id gives view and face.
uniform int vertices_per_view;
uniform int first_view;  // the pass's first view: gl_VertexID counts from the buffer's start
in vec4 in_clip;
out vec2 v_bary;
flat out int v_view;  // layer within the chunk
flat out int v_face;  // face index + 1 (gl_PrimitiveID would count across the chunk's views)

void main() {
    int corner = gl_VertexID % 3;
    v_bary = vec2(corner == 0, corner == 1);
    v_view = gl_VertexID / vertices_per_view - first_view;
    v_face = gl_VertexID % vertices_per_view / 3 + 1;
#if defined(GL_ARB_shader_viewport_layer_array) || defined(GL_AMD_vertex_shader_layer)
    gl_Layer = v_view;
#endif
    // GL stores framebuffer rows bottom-up; flipping y here puts the image's top row first in
    // memory (row 0 = top). The flip mirrors the winding, so the context culls with front = CW.
    gl_Position = vec4(in_clip.x, -in_clip.y, in_clip.z, in_clip.w);
}
