"""The protocol v1 GLSL shader (one pass) and its constants; docs/rendering.md writes out the formula.

Per covered pixel, with every colour in linear light until the last step:

    base  = baseColorFactor · texture(uv') · COLOR_0          (texture sRGB-decoded by the sampler)
    uv'   = (M · (u, v, 1))_xy                                 (M: KHR_texture_transform, T·R·S)
    n     = normalize(interpolated normal), negated on back faces (gl_FrontFacing: two-sided
            lighting); without normals in the file, the triangle's own normal turned to face the eye
    l     = the camera's +Z axis (a directional headlight shining along the view direction)
    rgb   = base.rgb · (AMBIENT + LIGHT · max(n·l, 0))         (unlit materials: rgb = base.rgb)
    out   = sRGB_encode(clamp(rgb, 0, 1))                      (IEC 61966-2-1), quantised to 8 bits

Alpha: OPAQUE 1; MASK 1, or the fragment is discarded when base.a < alphaCutoff; BLEND base.a, blended
"over" what is behind in 8-bit sRGB space, after all opaque/mask parts, in the file's part order
(primitive order within a draw is fixed by OpenGL, so the result is deterministic).
"""

from __future__ import annotations

AMBIENT = 0.3  # ambient term: a surface seen edge-on keeps 30 % of its base colour
LIGHT = 0.7  # headlight term: AMBIENT + LIGHT = 1, so a face-on surface shows exactly its base colour

ALPHA_MODE_CODES = {"OPAQUE": 0, "MASK": 1, "BLEND": 2}

VERTEX = """
#version 330
uniform mat4 u_clip_from_world;  // projection . view (rows flipped so image row 0 is read first)
uniform mat4 u_eye_from_world;   // the rigid view matrix
uniform mat3 u_uv_transform;
in vec3 in_position;
in vec3 in_normal;
in vec2 in_uv;
in vec4 in_color;
out vec3 v_eye;
out vec3 v_normal;
out vec2 v_uv;
out vec4 v_color;
void main() {
    vec4 world = vec4(in_position, 1.0);
    v_eye = (u_eye_from_world * world).xyz;
    v_normal = mat3(u_eye_from_world) * in_normal;
    v_uv = (u_uv_transform * vec3(in_uv, 1.0)).xy;
    v_color = in_color;
    gl_Position = u_clip_from_world * world;
}
"""

FRAGMENT = """
#version 330
uniform sampler2D u_texture;
uniform bool u_has_texture;
uniform bool u_has_color;
uniform bool u_has_normal;
uniform bool u_unlit;
uniform vec4 u_factor;
uniform int u_alpha_mode;     // 0 OPAQUE, 1 MASK, 2 BLEND
uniform float u_alpha_cutoff;
uniform float u_ambient;
uniform float u_light;
in vec3 v_eye;
in vec3 v_normal;
in vec2 v_uv;
in vec4 v_color;
out vec4 f_color;

vec3 srgb_encode(vec3 c) {
    c = clamp(c, 0.0, 1.0);
    vec3 lo = c * 12.92;
    vec3 hi = 1.055 * pow(c, vec3(1.0 / 2.4)) - 0.055;
    return mix(lo, hi, vec3(greaterThan(c, vec3(0.0031308))));
}

void main() {
    vec4 base = u_factor;
    if (u_has_texture) base *= texture(u_texture, v_uv);
    if (u_has_color) base *= v_color;
    if (u_alpha_mode == 1 && base.a < u_alpha_cutoff) discard;
    vec3 rgb = base.rgb;
    if (!u_unlit) {
        vec3 n;
        if (u_has_normal) {
            n = normalize(v_normal);
            if (!gl_FrontFacing) n = -n;
        } else {
            n = normalize(cross(dFdx(v_eye), dFdy(v_eye)));
            if (dot(n, v_eye) > 0.0) n = -n;  // the eye is at the origin: turn the face towards it
        }
        rgb *= u_ambient + u_light * max(n.z, 0.0);  // l = +Z in eye space: the headlight
    }
    f_color = vec4(srgb_encode(rgb), u_alpha_mode == 2 ? clamp(base.a, 0.0, 1.0) : 1.0);
}
"""
