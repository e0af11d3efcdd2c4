// The inbox's "New conversation" button: the dialog shared with the Contacts page.
import { openNewConversation } from "../new-conversation.js";

document.getElementById("new-conversation-button")?.addEventListener("click", () => {
  openNewConversation().catch(() => {});
});
