"""The web app: `python app.py`, or `gradio app.py` to reload on code changes."""

from rag.ui import create_demo, launch

demo = create_demo()

if __name__ == "__main__":
    launch(demo)
