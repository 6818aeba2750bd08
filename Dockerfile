# One image for both services, the migrate job and the worker.
FROM python:3.12-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
# The pinned, hash-checked dependencies first (a layer that changes only with the lock),
# then the project on top without resolving anything again.
COPY requirements.lock ./
RUN pip install -r requirements.lock
COPY pyproject.toml README.md ./
COPY pki ./pki
COPY schema ./schema
COPY account_api ./account_api
COPY certificate_api ./certificate_api
COPY worker ./worker
COPY ca_admin ./ca_admin
COPY core ./core
COPY migrations ./migrations
RUN pip install --no-deps . && useradd --system --uid 10001 tessera \
    && mkdir /app/var && chown tessera /app/var
USER tessera
ENV HOST=0.0.0.0
EXPOSE 5001 5002
CMD ["ca-admin", "--help"]
