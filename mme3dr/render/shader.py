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
uniform mat4 u_clip_from_world;  // projection . view (rows flipped so image row 0 is read first)
uniform mat4 u_eye_from_world;   // the rigid view matrix
in vec3 in_position;
#ifdef HAS_NORMAL
in vec3 in_normal;
out vec3 v_normal;
#else
out vec3 v_eye;
#endif
#ifdef HAS_TEXTURE
uniform mat3 u_uv_transform;
in vec2 in_uv;
out vec2 v_uv;
#endif
#ifdef HAS_COLOR
in vec4 in_color;
out vec4 v_color;
#endif
void main() {
    vec4 world = vec4(in_position, 1.0);
#ifdef HAS_NORMAL
    v_normal = mat3(u_eye_from_world) * in_normal;
#else
    v_eye = (u_eye_from_world * world).xyz;
#endif
#ifdef HAS_TEXTURE
    v_uv = (u_uv_transform * vec3(in_uv, 1.0)).xy;
#endif
#ifdef HAS_COLOR
    v_color = in_color;
#endif
    gl_Position = u_clip_from_world * world;
}
"""

FRAGMENT = """
uniform vec4 u_factor;
uniform int u_alpha_mode;     // 0 OPAQUE, 1 MASK, 2 BLEND
uniform float u_alpha_cutoff;
uniform float u_ambient;
uniform float u_light;
#ifdef HAS_NORMAL
in vec3 v_normal;
#else
in vec3 v_eye;
#endif
#ifdef HAS_TEXTURE
uniform sampler2D u_texture;
in vec2 v_uv;
#endif
#ifdef HAS_COLOR
in vec4 v_color;
#endif
out vec4 f_color;

vec3 srgb_encode(vec3 c) {
    c = clamp(c, 0.0, 1.0);
    vec3 lo = c * 12.92;
    vec3 hi = 1.055 * pow(c, vec3(1.0 / 2.4)) - 0.055;
    return mix(lo, hi, vec3(greaterThan(c, vec3(0.0031308))));
}

void main() {
    vec4 base = u_factor;
#ifdef HAS_TEXTURE
    base *= texture(u_texture, v_uv);
#endif
#ifdef HAS_COLOR
    base *= v_color;
#endif
    if (u_alpha_mode == 1 && base.a < u_alpha_cutoff) discard;
    vec3 rgb = base.rgb;
#ifndef UNLIT
#ifdef HAS_NORMAL
    vec3 n = normalize(v_normal);
    if (!gl_FrontFacing) n = -n;
#else
    vec3 n = normalize(cross(dFdx(v_eye), dFdy(v_eye)));
    if (dot(n, v_eye) > 0.0) n = -n;  // the eye is at the origin: turn the face towards it
#endif
    rgb *= u_ambient + u_light * max(n.z, 0.0);  // l = +Z in eye space: the headlight
#endif
    f_color = vec4(srgb_encode(rgb), u_alpha_mode == 2 ? clamp(base.a, 0.0, 1.0) : 1.0);
}
"""


def source(stage: str, *, normal: bool, texture: bool, color: bool, unlit: bool) -> str:
    """GLSL 330 source of ``stage`` ("vertex" or "fragment") for one combination of inputs: each
    variant interpolates only the attributes a part has (llvmpipe shades tiny triangles in 4x4 blocks,
    so every unused varying and branch costs on every block)."""
    flags = {"HAS_NORMAL": normal, "HAS_TEXTURE": texture, "HAS_COLOR": color, "UNLIT": unlit}
    defines = "".join(f"#define {name}\n" for name, on in flags.items() if on)
    return "#version 330\n" + defines + (VERTEX if stage == "vertex" else FRAGMENT)
