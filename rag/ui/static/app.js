// The passage viewer (rag/ui/viewer.py) opens on a request written into a hidden textbox:
// "kb<TAB>chunk id<TAB>nonce" (the nonce makes a second click on the same passage a change).
function ragOpenPassage(chunk, kb) {
  const box = document.querySelector("#rag-view-request textarea, #rag-view-request input");
  if (!box || !chunk) return false;
  box.value = [kb || "", chunk, Date.now()].join("\t");
  box.dispatchEvent(new Event("input", {bubbles: true}));
  const viewer = document.getElementById("rag-viewer");
  if (viewer) setTimeout(() => viewer.scrollIntoView({behavior: "smooth", block: "nearest"}), 300);
  return true;
}

// Citation links [n] open their passage in the viewer and flash their source card; a card's
// "View in document" opens its passage.
document.addEventListener("click", (event) => {
  const button = event.target.closest && event.target.closest("button.rag-view");
  if (button) {
    const card = button.closest(".rag-source");
    if (card) ragOpenPassage(card.dataset.chunk, "");
    return;
  }
  const link = event.target.closest && event.target.closest('a[href^="#src-"]');
  if (!link) return;
  event.preventDefault();
  const id = link.getAttribute("href").slice(1);
  setTimeout(() => {  // the sources panel first switches to the clicked reply's sources
    const card = document.getElementById(id);
    if (!card) return;
    const fold = card.closest("details.rag-also");  // an uncited source, folded away
    if (fold) fold.open = true;
    card.scrollIntoView({behavior: "smooth", block: "nearest"});
    const details = card.querySelector("details");
    if (details) details.open = true;
    card.classList.add("rag-flash");
    setTimeout(() => card.classList.remove("rag-flash"), 1600);
    ragOpenPassage(card.dataset.chunk, "");
  }, 350);
}, true);

// A link to a passage (?view=CHUNK&kb=NAME, as the API's Markdown gives) opens it once the
// page is ready.
(() => {
  const params = new URLSearchParams(window.location.search);
  const chunk = params.get("view");
  if (!chunk) return;
  const deadline = Date.now() + 30000;
  const timer = setInterval(() => {  // asked again until the viewer shows (Gradio is ready)
    const viewer = document.getElementById("rag-viewer");
    if ((viewer && viewer.offsetParent !== null) || Date.now() > deadline) {
      clearInterval(timer);
      return;
    }
    ragOpenPassage(chunk, params.get("kb") || "");
  }, 1500);
})();

// On a phone-sized screen (Gradio's own breakpoint, 768 px) the settings sidebar covers the
// whole page, so it starts closed there: the chat is what one sees first, the chevron at the
// top left opens the settings. Wider screens keep it open beside the page. A click made
// before Gradio has wired the sidebar is lost, so it is retried until the sidebar is closed.
if (window.matchMedia("(max-width: 768px)").matches) {
  const deadline = Date.now() + 30000;
  const timer = setInterval(() => {
    const toggle = document.querySelector(".sidebar .toggle-button");
    const open = toggle && toggle.closest(".sidebar").classList.contains("open");
    if (open) toggle.click();
    if ((toggle && !open) || Date.now() > deadline) clearInterval(timer);
  }, 100);
}
