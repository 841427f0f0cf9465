// The REST API under api/v1, with the bearer token when the server wants one.
//
// A 401 opens the token dialog once: every call waiting on a 401 shares that one prompt,
// and all of them retry with the token it stores. The token lives in localStorage.

const TOKEN_KEY = "hypersweep.token";

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

let prompt = null; // the pending token prompt, shared by all callers

export function storedToken() {
  return localStorage.getItem(TOKEN_KEY);
}

export function forgetToken() {
  localStorage.removeItem(TOKEN_KEY);
}

function askForToken(refused) {
  if (prompt) return prompt;
  const dialog = document.getElementById("token-dialog");
  const form = document.getElementById("token-form");
  const input = document.getElementById("token-input");
  document.getElementById("token-error").hidden = !refused;
  prompt = new Promise((resolve, reject) => {
    const onSubmit = () => {
      const token = input.value.trim();
      if (!token) return;
      localStorage.setItem(TOKEN_KEY, token);
      done();
      resolve();
    };
    const onClose = () => {
      if (!prompt) return;
      done();
      reject(new ApiError(401, "This server needs a token; reload the page to enter it."));
    };
    const done = () => {
      form.removeEventListener("submit", onSubmit);
      dialog.removeEventListener("close", onClose);
      prompt = null;
      input.value = "";
      if (dialog.open) dialog.close();
    };
    form.addEventListener("submit", onSubmit);
    dialog.addEventListener("close", onClose);
    dialog.showModal();
    input.focus();
  });
  return prompt;
}

async function request(path) {
  for (;;) {
    const token = storedToken();
    const headers = { Accept: "application/json" };
    if (token) headers.Authorization = `Bearer ${token}`;
    let response;
    try {
      response = await fetch(`api/v1${path}`, { headers });
    } catch (err) {
      throw new ApiError(0, `The server did not answer (${err.message}).`);
    }
    if (response.status === 401) {
      // A token we sent was refused: drop it, and say so in the prompt.
      if (token) forgetToken();
      await askForToken(Boolean(token));
      continue;
    }
    if (!response.ok) {
      let message = `${response.status} ${response.statusText}`;
      try {
        const body = await response.json();
        message = body.message || (typeof body.detail === "string" ? body.detail : message);
      } catch {
        // Not JSON: keep the status line.
      }
      throw new ApiError(response.status, message);
    }
    document.getElementById("forget-token").hidden = !token;
    return response;
  }
}

/** GET a JSON document under api/v1. */
export async function getJSON(path) {
  return (await request(path)).json();
}

/** GET a page of a listing: its items and the total from X-Total-Count. */
export async function getPage(path) {
  const response = await request(path);
  return { items: await response.json(), total: Number(response.headers.get("X-Total-Count") || 0) };
}
