// Citation links [n] scroll to their source card, open it and flash it.
document.addEventListener("click", (event) => {
  const link = event.target.closest && event.target.closest('a[href^="#src-"]');
  if (!link) return;
  event.preventDefault();
  const id = link.getAttribute("href").slice(1);
  setTimeout(() => {
    const card = document.getElementById(id);
    if (!card) return;
    const fold = card.closest("details.rag-also");  // an uncited source, folded away
    if (fold) fold.open = true;
    card.scrollIntoView({behavior: "smooth", block: "nearest"});
    const details = card.querySelector("details");
    if (details) details.open = true;
    card.classList.add("rag-flash");
    setTimeout(() => card.classList.remove("rag-flash"), 1600);
  }, 350);
}, true);

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
