"""Face motion apart from whose face it is, and motion without a driving video.

- :mod:`enliven.motion.pose`: head pose and expression from face-mesh landmarks, and back (a mean 3D face).
- :mod:`enliven.motion.sequence`: :class:`FaceMotion`, a face's motion over time (relative head pose, expression).
- :mod:`enliven.motion.edits`: :class:`ExpressionEdit`, expression and pose controls (``smile=0.6,yaw=15``).
- :mod:`enliven.motion.generator`: :class:`MotionGenerator`, the motion VAE's sampler (sample, vary, interpolate,
  loop), and :func:`motion_from_clip`.
- :mod:`enliven.motion.dataset`: labelled motion clips from a prepared dataset's landmark files (training, eval).

Rendering lives in :func:`enliven.inference.motion.animate_motion`.
"""
