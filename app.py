"""The web app: `python app.py`, or `gradio app.py` to reload on code changes."""

import logging

from rag.logs import configure_logging

configure_logging(logging.INFO)  # before rag.ui imports pymilvus, so gRPC's chatter stays quiet

from rag.ui import create_demo, launch  # noqa: E402

demo = create_demo()

if __name__ == "__main__":
    launch(demo)
