# gpt-oss-rag: the web app on Milvus Lite with the local embedding model baked in (works offline).
# Build: docker build -t gpt-oss-rag .
# Run:   docker run -p 7860:7860 -v rag-data:/data -e RAG_AUTH=alice:long-secret \
#          -e OPENAI_BASE_URL=http://host.docker.internal:11434/v1 gpt-oss-rag
# The container listens on 0.0.0.0, so the app starts only with a login (RAG_AUTH=user:password)
# or with RAG_ALLOW_NO_AUTH=true, the operator's explicit word that the network in front of it
# is trusted (a reverse proxy with its own login, or -p 127.0.0.1:7860:7860 on a one-user box).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    GRADIO_SERVER_NAME=0.0.0.0 \
    RAG_ALLOW_NO_AUTH=false \
    GRADIO_SERVER_PORT=7860 \
    GRADIO_ANALYTICS_ENABLED=False \
    MILVUS_URI=/data/milvus.db \
    DATABASE_URL=sqlite:////data/app.db \
    RAG_DEMO_DOCS=/app/assets/demo-docs

WORKDIR /app

# Tesseract reads scanned PDF pages and images (OCR=true); English language data.
RUN apt-get update \
    && apt-get install -y --no-install-recommends tesseract-ocr tesseract-ocr-eng \
    && rm -rf /var/lib/apt/lists/*

# CPU-only PyTorch first, from the CPU wheel index, so nothing pulls the CUDA builds.
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0

COPY pyproject.toml README.md ./
COPY rag ./rag
COPY app.py ./
COPY assets ./assets
RUN pip install . \
    && useradd --create-home --uid 1000 rag \
    && mkdir -p /data \
    && chown rag:rag /data

USER rag
# Export the ONNX encoder once at build time so the first start is fast and needs no network.
RUN python -c "from rag.kb import KnowledgeBase; from rag.settings import Settings; \
print(KnowledgeBase(Settings.from_env()).embedder.dimension)"

VOLUME ["/data"]
EXPOSE 7860
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:7860/', timeout=4)"

CMD ["python", "app.py"]
