"""Data: course-format loaders (Blender scenes, csv image folders) and procedural generators."""
