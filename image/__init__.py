"""The container image: ``image/build.py`` builds the Containerfile with buildah (``make image``)."""
