# One image for both services, the migrate job and the worker.
FROM python:3.12-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY schema ./schema
COPY account_api ./account_api
COPY certificate_api ./certificate_api
COPY ca_admin ./ca_admin
COPY worker ./worker
COPY migrations ./migrations
RUN pip install . && useradd --system --uid 10001 tessera && mkdir /app/var && chown tessera /app/var
USER tessera
ENV HOST=0.0.0.0
EXPOSE 5001 5002
CMD ["ca-admin", "--help"]
