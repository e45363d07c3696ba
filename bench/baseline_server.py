"""The benchmark's baseline: the same model and preprocessing behind a bare Starlette app.

No BentoML: one uvicorn process, ONNX Runtime called inline. This is about as little
as a Python HTTP service can do per request, so bench/serve_load.py reports the
BentoML service's throughput as a fraction of it. Run it by hand with::

    python bench/baseline_server.py --model models/model.onnx --port 3001

    curl -F image=@digit.png http://127.0.0.1:3001/predict
    curl -H 'Content-Type: application/json' -d '{"pixels": [...784 values]}' \\
        http://127.0.0.1:3001/predict_array
    curl -H 'Content-Type: application/x-npy' --data-binary @digits.npy \\
        http://127.0.0.1:3001/predict_npy  # add -H 'Accept: application/x-npy'

/predict_npy is the floor of a bulk route: ``numpy.load``, one model call, the answers as
JSON or (asked for) as an ``.npy`` of the (N, 10) probabilities, with no checks, ids or
log. Against the JSON batch it says how far any Python service on this core can go.
"""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mnist_mlops import imaging
from mnist_mlops.inference.model_card import ModelCard
from mnist_mlops.inference.session import inference_session, softmax


def create_app(model_path: Path) -> Starlette:
    """A Starlette app with /predict (multipart ``image``), /predict_array, /predict_npy
    and /readyz."""
    session = inference_session(model_path)
    card = ModelCard.read_beside(model_path)
    input_name, output_name, version = card.input, card.output, card.version

    def answer(pixels: np.ndarray) -> Response:
        (logits,) = session.run([output_name], {input_name: pixels[None]})
        probs = softmax(logits)[0]
        body = {"digit": int(probs.argmax()), "probabilities": probs.tolist(),
                "model_version": version}  # fmt: skip
        return JSONResponse(body)

    async def predict(request: Request) -> Response:
        async with request.form(max_files=1, max_fields=1) as form:
            upload = form.get("image")
            if upload is None or isinstance(upload, str):
                return JSONResponse({"error": "send a file field named 'image'"}, 400)
            data = await upload.read()
        try:
            return answer(imaging.preprocess_image(data))
        except imaging.ImageError as exc:
            return JSONResponse({"error": str(exc)}, 400)

    async def predict_array(request: Request) -> Response:
        try:
            pixels = imaging.pixels_from_array(json.loads(await request.body())["pixels"])
        except (ValueError, KeyError, TypeError) as exc:
            return JSONResponse({"error": str(exc)}, 400)
        return answer(pixels)

    async def predict_npy(request: Request) -> Response:
        try:
            pixels = np.load(io.BytesIO(await request.body()), allow_pickle=False)
            pixels = pixels.reshape(-1, 28, 28).astype(np.float32)
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, 400)
        (logits,) = session.run([output_name], {input_name: pixels})
        probs = softmax(logits)
        if "application/x-npy" in request.headers.get("accept", ""):
            buffer = io.BytesIO()
            np.save(buffer, probs.astype(np.float32))
            return Response(buffer.getvalue(), media_type="application/x-npy")
        rows = [{"digit": d, "probabilities": p, "model_version": version}
                for d, p in zip(probs.argmax(axis=1).tolist(), probs.tolist())]  # fmt: skip
        return JSONResponse({"predictions": rows})

    async def readyz(_: Request) -> Response:
        return Response("\n")

    return Starlette(
        routes=[
            Route("/predict", predict, methods=["POST"]),
            Route("/predict_array", predict_array, methods=["POST"]),
            Route("/predict_npy", predict_npy, methods=["POST"]),
            Route("/readyz", readyz),
        ]
    )


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("models/model.onnx"))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3001)
    args = parser.parse_args()
    uvicorn.run(create_app(args.model), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
