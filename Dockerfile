FROM python:3.11-slim
WORKDIR /opt/cairn
COPY pyproject.toml README.md ./
COPY common ./common
COPY ring ./ring
COPY storagenode ./storagenode
COPY gateway ./gateway
COPY cli ./cli
RUN pip install --no-cache-dir ".[fast]"
RUN useradd --system --uid 10001 cairn && mkdir -p /cluster /data && chown cairn /cluster /data
USER cairn
EXPOSE 9000 7001
