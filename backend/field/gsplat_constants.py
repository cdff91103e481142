"""gsplat 1.5's rasterization constants (its defaults), shared by the torch renderer (render.py) and the numpy
click (click_pixels.py), so a click composites exactly the pixel the renderer draws. No torch."""

EPS2D = 0.3  # px^2 added to the projected covariance's diagonal (gsplat eps2d)
NEAR_PLANE = 0.01
FAR_PLANE = 1e10
ALPHA_MIN = 1.0 / 255.0  # fragments below are skipped
ALPHA_MAX = 0.999  # gsplat's clamp (3DGS uses 0.99)
T_MIN = 1e-4  # a pixel stops before its transmittance would reach this
MAX_EXTEND = 3.33  # gsplat's cap on the box half-size in sigmas
FOV_CLAMP = 0.3  # the Jacobian clamps x/z, y/z to (1 + FOV_CLAMP) times the field of view
